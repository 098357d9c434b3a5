import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers
import Synchronization
import NIOCore
import NIOWebSocket

/// Client ids and their sockets (SPEC §2–§3): replacement of a live id, per-id push buffers
/// flushed in order on (re)connect, and one life for every id: connected → away for the grace
/// period → expired, its buffer released and counted as dropped.
///
/// One lock guards the table; messages are handed to sessions outside it (a send may close a
/// socket, which detaches it under the same lock). Every buffered message holds its bytes of
/// the host-wide `BufferBudget`.
///
/// An id without a socket may have one IPC fallback stream (SPEC §6). Its pushes stay in the
/// buffer and the stream takes them one by one as it writes them (`takeNext`), so whichever
/// attaches next (a socket or another stream) takes over exactly what was not yet written.
public final class ClientDirectory: PushSink, Sendable {
    /// A replaced socket and what it handed back as it closed (nil: not closed yet).
    struct HandOver {
        let session: Session
        var unsent: CircularBuffer<MessageQueue.Entry>?
        /// What goes ahead of all that the replaced sockets hand back (on the oldest only):
        /// messages a reset carried over, sent before any of it.
        var carried = CircularBuffer<MessageQueue.Entry>()
    }

    struct Slot {
        var session: Session?
        var stream: (any PushStream)?
        /// Pushes for an absent id, or in transit to the id's socket from another thread.
        var buffer: MessageQueue
        var pushed = 0
        var dropped = 0
        /// A drain of `buffer` into `session` is scheduled on its event loop.
        var draining = false
        /// The sockets `session` replaced, oldest first, until each has handed back what it
        /// had not written: those messages go to the new socket first, the oldest socket's
        /// first, whatever order the old sockets close in (two quick replacements).
        var replaced: [HandOver] = []
        /// `whenWritable` callbacks waiting for the id's queued bytes to fall.
        var waiters: [@Sendable () -> Void] = []
        /// Handshakes accepted for the id whose socket is not attached yet: the id counts as
        /// connected from the moment its 101 is on the way (a relay right after it must arrive).
        var handshakes = 0
        /// Positions and the window of a resuming id (SPEC §9), across its sockets and streams.
        var resume: ResumeState?
        /// The cancellable requests of the id's sockets, each socket's while it holds any: a
        /// client sends a cancel again on its next socket (SPEC §8: "that client's" request),
        /// where that socket's registry alone ignored it and the work went on unanswered.
        var cancellations: [CancellationRegistry] = []
        /// Handlers were told `.connected` for the id: what they keep per held id (the NATS
        /// pushes' subscription) exists. An id held through IPC alone is told once too.
        var announced = false

        /// Marks the id announced; true when it was not yet (`.connected` is then to be told).
        mutating func announce() -> Bool {
            defer { announced = true }
            return !announced
        }

        /// Bytes queued for the id: its buffer and its socket's outbound queue.
        var queuedBytes: Int {
            buffer.bytes + (session?.queuedBytes.load(ordering: .relaxed) ?? 0)
        }

        var queuedMessages: Int {
            buffer.count + (session?.queuedMessages.load(ordering: .relaxed) ?? 0)
        }

        var isAway: Bool { session == nil && stream == nil && handshakes == 0 }

        /// Keeps `registry` (a socket's, an IPC connection's) among the id's, letting go of
        /// those with nothing left to cancel.
        mutating func adopt(_ registry: CancellationRegistry) {
            cancellations.removeAll { $0.isEmpty && $0 !== registry }
            if !cancellations.contains(where: { $0 === registry }) { cancellations.append(registry) }
        }

        /// A socket is open for the id, or its 101 is on the way: the client may be told it
        /// is connected before the socket attaches, and the host answers as it would after.
        var isConnected: Bool { session != nil || handshakes > 0 }

        /// A handshake for the id ended, its socket attached or not: once none is on the way,
        /// a stream still the id's takes what waits again.
        mutating func handshakeEnded() {
            handshakes = max(0, handshakes - 1)
            if handshakes == 0 { stream?.messagesAvailable() }
        }
    }

    let slots = NIOLockedValueBox<[ClientID: Slot]>([:])
    /// Taken inside the table's lock only, like `paused` and `placeCounts`.
    let awayOrder = NIOLockedValueBox(AwayOrder())
    let placeCounts = NIOLockedValueBox(PlaceCounts())
    let paused = NIOLockedValueBox(false)
    /// When the timer that ends grace periods fires next (nil: not set).
    let nextSweep = NIOLockedValueBox<NIODeadline?>(nil)
    let settings: HostSettings
    let gracePeriod: TimeAmount
    let timers: any EventLoop
    let events: ClientEventLine
    public let budget: BufferBudget

    init(settings: HostSettings, timers: any EventLoop, budget: BufferBudget, events: @escaping @Sendable (ClientEvent) -> Void) {
        self.settings = settings
        self.budget = budget
        self.gracePeriod = .fractionalSeconds(settings.clientGraceSeconds)
        self.timers = timers
        self.events = ClientEventLine(events)
    }

    // MARK: Pushes

    /// A push from the socket's own event loop, with nothing queued before it, goes straight to
    /// the socket's queue. Any other push to a live socket goes through the id's buffer, which
    /// the socket's event loop drains: a message is then never in flight outside the table, so
    /// a socket that closes meanwhile leaves it in the buffer, in order, for the next socket.
    @discardableResult
    public func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome {
        // A push is a whole message (the host splits one too large): a `more` its maker set
        // had the client hold it as a first part and join the next message to it (SPEC §3).
        var message = message
        if message.headers[HeaderName.more] != nil { message.headers.removeAll(HeaderName.more) }
        do {
            try message.validateForSending()
        } catch {
            budget.dropped(.unencodable)
            return .dropped(.unencodable)
        }
        let entry = MessageQueue.Entry(message, delivery: delivery)
        enum Delivery { case now(Session), drain(Session), none }
        let placed: (Delivery, PushOutcome)? = withPlacedSlot(client, evicting: false) { slot in
            slot.pushed += 1
            guard let session = slot.session else {
                let outcome = buffer(entry, for: client, in: &slot)
                slot.stream?.messagesAvailable()
                return (.none, outcome)
            }
            if session.channel.eventLoop.inEventLoop, !slot.draining, slot.replaced.isEmpty, slot.buffer.isEmpty {
                return (.now(session), .sent)
            }
            let outcome = bufferInTransit(entry, to: session, in: &slot)
            guard outcome.isAccepted, !slot.draining, slot.replaced.isEmpty else { return (.none, outcome) }
            slot.draining = true
            return (.drain(session), outcome)
        }
        guard let placed else { return droppedForNoPlace() }
        let (delivery, outcome) = placed
        // Sent outside the lock: a send can close the socket, which comes back here.
        switch delivery {
        case .now(let session): return session.sendOnLoop(entry, reserved: false)
        case .drain(let session): session.channel.eventLoop.execute { self.drain(into: session) }
        case .none: break
        }
        return outcome
    }

    /// Keeps a push for a live socket that another thread made, within the socket's bounds
    /// (its outbound queue counts against the same bytes). Under the close policy a socket
    /// that can't take it is closed and the push waits in the buffer as for an absent id.
    private func bufferInTransit(_ entry: MessageQueue.Entry, to session: Session, in slot: inout Slot) -> PushOutcome {
        // What the socket's queue holds counts in both bounds: the buffer is emptied into it
        // by each drain, so a push found it empty, and the queue grew past its message bound.
        slot.buffer.byteLimit = max(0, settings.outboundQueueBytes - session.queuedBytes.load(ordering: .relaxed))
        slot.buffer.countLimit = max(0, settings.outboundQueueMessages - session.queuedMessages.load(ordering: .relaxed))
        if slot.resume != nil, !slot.buffer.fits(entry) {
            // A resuming socket that can't take more is closed, and nothing is dropped: this
            // waits here, within the budget only, until the socket hands back (`detach`), where
            // what the push buffer can't hold goes into the window. Dropped, a message had no
            // position, and the client reading on never learned of it.
            session.close(code: .policyViolation, reason: "the client reads too slowly: outbound queue full")
            slot.buffer.byteLimit = .max
            slot.buffer.countLimit = .max
            return record(slot.buffer.append(entry, evictOldest: false), in: &slot, sent: false)
        }
        let closing = settings.outboundPolicy == .close && !slot.buffer.fits(entry)
        if closing {
            session.close(code: .policyViolation, reason: "the client reads too slowly: outbound queue full")
            slot.buffer.byteLimit = settings.pushBufferBytes
            slot.buffer.countLimit = settings.pushBufferMessages
        }
        return record(slot.buffer.append(entry, evictOldest: true), in: &slot, sent: !closing)
    }

    private func buffer(_ entry: MessageQueue.Entry, for client: ClientID, in slot: inout Slot) -> PushOutcome {
        slot.buffer.byteLimit = settings.pushBufferBytes
        slot.buffer.countLimit = settings.pushBufferMessages
        if slot.resume != nil, let stream = slot.stream, !slot.buffer.fits(entry) {
            // A resuming id's events stream that can't take more ends, as a resuming socket is
            // closed: the id is away, and the client resumes with what the window keeps.
            stream.end()
            slot.stream = nil
        }
        // A push may be the first thing heard of this id.
        startGraceIfAway(client, in: &slot)
        let overflow = windowOverflow(of: slot)
        // A push buffer of no messages: straight to the window.
        if slot.buffer.isEmpty, !slot.buffer.fits(entry), entry.delivery.isDroppable, overflow(entry.message) { return .buffered }
        return record(slot.buffer.append(entry, evictOldest: true, overflow: overflow), in: &slot, sent: false)
    }

    /// Where the id's buffer hands its oldest messages rather than dropping them: a resuming id
    /// with no socket or stream numbers them into its window (`ResumeState.keepWhileAway`). A
    /// handshake in progress too: a resuming one replays them, and a plain one ends the resume
    /// state, as the full buffer would have dropped them. Any other id has nowhere: they are
    /// dropped as before.
    func windowOverflow(of slot: Slot) -> (Message) -> Bool {
        guard let resume = slot.resume, slot.session == nil, slot.stream == nil, slot.replaced.isEmpty else { return { _ in false } }
        return { resume.keepWhileAway($0) }
    }

    /// An id with no socket, stream or handshake and no grace period running gets one: what it
    /// holds lives that long unless the id comes back. (While paused none runs: the id is away
    /// already when the order holds it.)
    func startGraceIfAway(_ client: ClientID, in slot: inout Slot) {
        guard slot.isAway, !awayOrder.withLockedValue({ $0.holds(client) }) else { return }
        startGrace(client)
    }

    private func record(_ admission: MessageQueue.Admission, in slot: inout Slot, sent: Bool) -> PushOutcome {
        switch admission {
        case .accepted(evicted: 0): return sent ? .sent : .buffered
        case .accepted(let evicted):
            slot.dropped += evicted
            return sent ? .sent : .bufferedDroppingOldest
        case .refused(let cause):
            slot.dropped += 1
            return .dropped(cause)
        }
    }

    /// Sends what waits in the id's buffer to `session`, if it is still the id's socket.
    func drain(into session: Session) {
        let entries: CircularBuffer<MessageQueue.Entry> = slots.withLockedValue { slots in
            guard slots[session.client]?.session === session, slots[session.client]?.replaced.isEmpty == true else { return [] }
            slots[session.client]?.draining = false
            // In the socket's queue from now, under the lock: a push between this and the
            // queue's own count (published once it took them) saw them in neither, and the
            // queue passed its bounds.
            session.queuedBytes.add(slots[session.client]?.buffer.bytes ?? 0, ordering: .relaxed)
            let entries = slots[session.client]?.buffer.takeAll() ?? []
            session.queuedMessages.add(entries.count, ordering: .relaxed)
            return entries
        }
        if !entries.isEmpty { session.sendOnLoop(batch: entries) }
        queueShrank(for: session.client)
    }

    public func isConnected(_ client: ClientID) -> Bool {
        slots.withLockedValue { $0[client]?.isConnected ?? false }
    }

    /// Takes back a message a closing session could not write (or was handed after it
    /// closed): to the id's buffer, or to its new socket. `asNewest`: it was sent after
    /// everything the socket handed back (else it is older: a drained push).
    @discardableResult
    func requeue(_ entry: MessageQueue.Entry, reserved: Bool, asNewest: Bool = false, for client: ClientID) -> PushOutcome {
        guard reserved || budget.reserve(entry.bytes) else {
            budget.dropped(.hostBudget)
            return .dropped(.hostBudget)
        }
        return giveBack([entry], asNewest: asNewest, for: client)
    }

    /// As `requeue`, for a run of older messages (a drain that reached a closed socket), in
    /// order and in one step: taken back one by one, newest first, a resuming id's window could
    /// number one before those older than it, and a new socket received them newest first.
    func requeue(older entries: CircularBuffer<MessageQueue.Entry>, for client: ClientID) {
        giveBack(entries, asNewest: false, for: client)
    }

    /// Messages whose bytes are reserved, back to the id: to its socket when nothing waits
    /// before them, else into its buffer (after what waits there when `asNewest`, else before).
    /// A reply for an id that expired meanwhile lives one grace period, like a push.
    @discardableResult
    private func giveBack(_ entries: CircularBuffer<MessageQueue.Entry>, asNewest: Bool, for client: ClientID) -> PushOutcome {
        // Outer nil: no place for the id; inner nil: kept in its buffer.
        let placed: Session?? = withPlacedSlot(client) { slot in
            if let session = slot.session, slot.replaced.isEmpty, !slot.draining, slot.buffer.isEmpty { return session }
            let overflow = windowOverflow(of: slot)
            if asNewest {
                for entry in entries { _ = record(slot.buffer.append(entry, evictOldest: true, reserved: true, overflow: overflow), in: &slot, sent: false) }
            } else {
                slot.dropped += slot.buffer.prepend(entries, overflow: overflow)
            }
            startGraceIfAway(client, in: &slot)
            slot.stream?.messagesAvailable()
            return nil
        }
        guard let session = placed else {
            for entry in entries {
                budget.release(entry.bytes)
                entry.delivery.countDropped()
            }
            budget.dropped(.tooManyClients, count: entries.count)
            return .dropped(.tooManyClients)
        }
        guard let session else { return .buffered }
        // One message keeps its place should this socket close too; a run goes back as a run.
        if entries.count == 1 {
            session.send(entries.first!, reserved: true, asNewest: asNewest)
        } else if session.channel.eventLoop.inEventLoop {
            session.sendOnLoop(batch: entries)
        } else {
            session.channel.eventLoop.execute { session.sendOnLoop(batch: entries) }
        }
        return .sent
    }

    /// A message for a new id the table has no place for: dropped, counted.
    private func droppedForNoPlace() -> PushOutcome {
        budget.dropped(.tooManyClients)
        return .dropped(.tooManyClients)
    }

    /// Runs `body` on the id's slot in place (no copy of its buffer), under the lock.
    func withSlot<Result>(_ client: ClientID, _ body: (inout Slot) -> Result) -> Result {
        slots.withLockedValue { body(&$0[client, default: newSlot()]) }
    }

    var isPaused: Bool { paused.withLockedValue { $0 } }

    func newSlot() -> Slot {
        Slot(buffer: MessageQueue(byteLimit: settings.pushBufferBytes, countLimit: settings.pushBufferMessages, budget: budget))
    }

    /// Every open session (to close them at pause or shutdown).
    var sessions: [Session] {
        slots.withLockedValue { $0.values.compactMap(\.session) }
    }
}
