import ConduitKit
import ConduitWire
import Logging
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
    private func windowOverflow(of slot: Slot) -> (Message) -> Bool {
        guard let resume = slot.resume, slot.session == nil, slot.stream == nil, slot.replaced.isEmpty else { return { _ in false } }
        return { resume.keepWhileAway($0) }
    }

    /// An id with no socket, stream or handshake and no grace period running gets one: what it
    /// holds lives that long unless the id comes back. (While paused none runs: the id is away
    /// already when the order holds it.)
    private func startGraceIfAway(_ client: ClientID, in slot: inout Slot) {
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

    // MARK: Congestion

    /// Congested: over the high-water mark in bytes, or over half the byte or message bound
    /// of the id's queue (a stream of small messages meets the latter first; so does a queue
    /// configured smaller than the mark, whose reliable pushes were refused before a stream
    /// was ever told to pause).
    public func isCongested(_ client: ClientID) -> Bool {
        slots.withLockedValue { slots in
            guard let slot = slots[client] else { return false }
            return slot.queuedBytes > min(settings.congestionHighWaterBytes, byteBound(slot) / 2) || slot.queuedMessages > messageBound(slot) / 2
        }
    }

    public func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) {
        let (now, early): (Bool, (@Sendable () -> Void)?) = slots.withLockedValue { slots in
            guard slots[client] != nil, !isUnderLowWater(slots[client]!) else { return (true, nil) }
            slots[client]!.waiters.append(body)
            guard slots[client]!.waiters.count > Self.maxWaitersPerID else { return (false, nil) }
            return (false, slots[client]!.waiters.removeFirst())
        }
        if now { body() }
        if let early { timers.scheduleTask(in: Self.earlyCallDelay) { early() } }
    }

    /// Callbacks one id keeps at most; past it the oldest is called early (it finds the id
    /// still congested and waits again). Those of sources that ended meanwhile (a TLS
    /// connection closed while paused, an AI stream past its timeout) stayed, each holding what
    /// it captured, until the id drained or expired: a client that never read grew the list
    /// without end.
    static let maxWaitersPerID = 64
    /// How much later than its eviction the oldest callback is called: called at once, it
    /// waited again at once and evicted the next, a spin (413,899 calls in 2 s with 65 waiting).
    static let earlyCallDelay = TimeAmount.milliseconds(50)

    private func isUnderLowWater(_ slot: Slot) -> Bool {
        slot.queuedBytes <= min(settings.congestionLowWaterBytes, byteBound(slot) / 4) && slot.queuedMessages <= messageBound(slot) / 4
    }

    private func messageBound(_ slot: Slot) -> Int {
        slot.session == nil ? settings.pushBufferMessages : settings.outboundQueueMessages
    }

    private func byteBound(_ slot: Slot) -> Int {
        slot.session == nil ? settings.pushBufferBytes : settings.outboundQueueBytes
    }

    /// The id's queue shrank (its socket wrote, a stream took a push, a buffer was handed to
    /// the socket): wakes the waiters once it is under the low-water mark.
    func queueShrank(for client: ClientID) {
        let waiters = slots.withLockedValue { takeWaitersIfWritable(client, in: &$0) }
        for waiter in waiters { waiter() }
    }

    private func takeWaitersIfWritable(_ client: ClientID, in slots: inout [ClientID: Slot]) -> [@Sendable () -> Void] {
        guard let slot = slots[client], !slot.waiters.isEmpty, isUnderLowWater(slot) else { return [] }
        slots[client]!.waiters = []
        return slot.waiters
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
}

// MARK: Sockets coming and going

extension ClientDirectory {
    /// Makes `session` the id's socket; an older one is closed with 1000 `replaced`. What was
    /// buffered for the id is sent first, in order — after what the replaced socket had not
    /// written yet, which it hands over as it closes (`detach`). Called on the session's event
    /// loop, so a push from another thread (which hops there) can't overtake the buffered ones.
    func attach(_ session: Session) {
        session.channel.eventLoop.preconditionInEventLoop()
        // Checked under the table's lock, which a pause's closing of all sessions also takes:
        // a handshake that completes while the server is being paused is either refused here
        // or among the sessions that the pause closes.
        var outrun = false
        let admitted: (Session?, CircularBuffer<MessageQueue.Entry>, ResumeStart?)? = slots.withLockedValue { slots in
            guard !paused.withLockedValue({ $0 }) else {
                slots[session.client]?.handshakeEnded()
                return nil
            }
            // A socket that arrived earlier than the id's current one (its handshake finished
            // later) replaces nothing: it is the one replaced (`ArrivalOrder`).
            if let current = slots[session.client]?.session, current.arrival > session.arrival {
                slots[session.client]!.handshakeEnded()
                outrun = true
                return nil
            }
            let replaced = install(session, in: &slots[session.client, default: newSlot()])
            events.enqueue(replaced == nil ? .connected(session.client) : .replaced(session.client))
            let resume = startResume(session.resumeRequest, writer: session, in: &slots[session.client]!)
            // A socket replaced before the last one went may still hand back older messages.
            let buffered = slots[session.client]!.replaced.isEmpty ? slots[session.client]!.buffer.takeAll() : []
            return (replaced, buffered, resume)
        }
        guard let (replaced, buffered, resume) = admitted else {
            if outrun { return session.refuse(code: .normalClosure, reason: "replaced") }
            session.refuse(code: .goingAway, reason: "paused")
            return
        }
        if let resume { session.beginResume(resume.state, resume.greeting) }
        if !buffered.isEmpty { session.sendOnLoop(batch: buffered) }
        queueShrank(for: session.client)
        replaced?.close(code: .normalClosure, reason: "replaced")
        events.tellWaiting(untilTold: true)
    }

    /// Makes `session` the slot's socket, ending a fallback stream; returns the replaced socket.
    private func install(_ session: Session, in slot: inout Slot) -> Session? {
        let old = slot.session
        slot.session = session
        slot.announced = true
        slot.stream?.end()
        slot.stream = nil
        slot.handshakeEnded()
        endGrace(session.client)
        // A drain scheduled for the old socket finds it gone.
        slot.draining = false
        if let old { slot.replaced.append(HandOver(session: old)) }
        slot.adopt(session.cancellations)
        return old
    }

    /// Cancels `token` among the requests of the id's other sockets, the newest first. Looked
    /// at only for a cancel the socket's own registry did not know.
    func cancel(_ token: String, of client: ClientID, besides own: CancellationRegistry) -> (CancellationRegistry.Cancelled, in: CancellationRegistry)? {
        let registries = slots.withLockedValue { $0[client]?.cancellations ?? [] }
        for registry in registries.reversed() where registry !== own {
            if let cancelled = registry.cancel(token) { return (cancelled, registry) }
        }
        return nil
    }

    typealias ResumeStart = (state: ResumeState, greeting: ResumeState.Greeting)

    /// A resuming connect takes over (or starts) the id's resume state, `writer` numbering from
    /// now on; a plain one ends it (SPEC §9).
    private func startResume(_ request: ResumeRequest?, writer: AnyObject, in slot: inout Slot) -> ResumeStart? {
        guard let request else {
            slot.resume?.end()
            slot.resume = nil
            return nil
        }
        let state = slot.resume ?? ResumeState(windowLimit: settings.resumeWindowBytes, budget: budget)
        slot.resume = state
        let greeting = state.resume(request, writer: writer)
        placeCarried(greeting.carried, in: &slot)
        return (state, greeting)
    }

    /// Messages a reset carried over were sent before anything else that waits for the id: they
    /// go first, ahead of its buffer or, while replaced sockets still have to hand back what
    /// they did not write, ahead of that.
    private func placeCarried(_ carried: CircularBuffer<MessageQueue.Entry>, in slot: inout Slot) {
        guard !carried.isEmpty else { return }
        guard slot.replaced.isEmpty else { return slot.replaced[0].carried.append(contentsOf: carried) }
        let waiting = slot.buffer.takeAll()
        // Their bytes are reserved, and they were accepted once: no bound of the buffer drops them.
        for entry in carried { slot.buffer.takeOver(entry) }
        for entry in waiting { slot.buffer.takeOver(entry) }
    }

    /// Forgets `session` if it is still the id's socket and starts the grace period. `unsent`,
    /// what the socket had accepted but not written, goes back to the front of the id's buffer
    /// in the same step, so no newer push can come before it; if a new socket replaced this
    /// one, it receives them now, ahead of everything pushed since.
    func detach(_ session: Session, unsent: CircularBuffer<MessageQueue.Entry>) {
        let (wasCurrent, drainInto): (Bool, Session?) = withSlot(session.client) { slot in
            let wasCurrent = slot.session === session
            if wasCurrent {
                slot.session = nil
                slot.draining = false
                events.enqueue(.disconnected(session.client))
                if slot.isAway { startGrace(session.client) }
                if slot.stream == nil { slot.resume?.idle() }
            }
            // Handed over to a new socket: its own bound applies as they reach its queue.
            let away = slot.session == nil
            slot.buffer.byteLimit = away ? settings.pushBufferBytes : max(settings.pushBufferBytes, settings.outboundQueueBytes)
            slot.buffer.countLimit = away ? settings.pushBufferMessages : max(settings.pushBufferMessages, settings.outboundQueueMessages)
            handBack(unsent, from: session, in: &slot)
            // A replaced socket that closes after its id expired would otherwise leave a slot
            // that never expires.
            startGraceIfAway(session.client, in: &slot)
            slot.stream?.messagesAvailable()
            guard let current = slot.session, slot.replaced.isEmpty, !slot.draining, !slot.buffer.isEmpty else {
                return (wasCurrent, nil)
            }
            slot.draining = true
            return (wasCurrent, current)
        }
        if let drainInto { drainInto.channel.eventLoop.execute { self.drain(into: drainInto) } }
        // On the socket's loop after what runs there now: a push that closed the socket
        // (the close policy) may come from a handler holding a lock its `clientEvent` takes.
        if wasCurrent { session.channel.eventLoop.execute { self.events.tellWaiting() } }
    }

    /// Puts what `session` had not written back at the front of the id's buffer; a replaced
    /// socket's is held until every replaced socket has handed back, then all of it goes in
    /// order, the oldest socket's first.
    private func handBack(_ unsent: CircularBuffer<MessageQueue.Entry>, from session: Session, in slot: inout Slot) {
        guard let index = slot.replaced.firstIndex(where: { $0.session === session }) else {
            slot.dropped += slot.buffer.prepend(unsent, overflow: windowOverflow(of: slot))
            return
        }
        var handedBack = slot.replaced[index].unsent ?? CircularBuffer()
        handedBack.append(contentsOf: unsent)
        slot.replaced[index].unsent = handedBack
        guard slot.replaced.allSatisfy({ $0.unsent != nil }) else { return }
        // In one step, the oldest socket's first: the window takes the oldest of all of them.
        let oldestFirst = slot.replaced.flatMap { $0.carried + $0.unsent! }
        slot.replaced = []
        slot.dropped += slot.buffer.prepend(oldestFirst, overflow: windowOverflow(of: slot))
    }

    /// A handshake for the id was accepted; its 101 is about to be written. Until the socket
    /// attaches (or the handshake fails: `handshakeAbandoned`) pushes wait in its buffer.
    /// False, and nothing kept, for a new id the table has no place for.
    func handshakeAccepted(_ client: ClientID) -> Bool {
        withPlacedSlot(client) { (slot: inout Slot) -> Void in
            slot.handshakes += 1
            endGrace(client)
        } != nil
    }

    /// The connection closed before its socket attached.
    func handshakeAbandoned(_ client: ClientID) {
        withSlot(client) { slot in
            slot.handshakeEnded()
            if slot.isAway { startGrace(client) }
        }
    }

    /// An id named over IPC (an invocation's `id=`): it lives for one grace period from now
    /// unless a socket or a stream opens for it, like an id whose socket just closed. False,
    /// and nothing kept, for a new id the table has no place for. `cancellations`: the
    /// invoking connection's, which a cancel on the id's socket reaches.
    func touch(_ client: ClientID, cancellations: CancellationRegistry? = nil) -> Bool {
        let placed: Void? = withPlacedSlot(client) { slot in
            if let cancellations { slot.adopt(cancellations) }
            if slot.isAway { startGrace(client) }
            if slot.announce() { events.enqueue(.connected(client)) }
        }
        events.tellWaiting(untilTold: true)
        return placed != nil
    }

    /// While paused, ids don't expire: a pause is not a client leaving.
    func setPaused(_ isPaused: Bool) {
        paused.withLockedValue { $0 = isPaused }
        // Paused, the timer ends nothing; after, every id away has its grace period again.
        guard !isPaused else { return }
        slots.withLockedValue { slots in
            for (client, slot) in slots where slot.isAway { startGrace(client) }
        }
    }

    // MARK: IPC fallback streams

    enum StreamAttachment {
        /// The id has an open socket: the socket receives its pushes.
        case refused
        /// The id is new and the table has no place for it.
        case noPlace
        /// The stream receives the id's pushes, after the greeting when it resumes (SPEC §9).
        case attached(ResumeState.Greeting?)
    }

    /// Makes `stream` the id's fallback receiver, ending an older one; `resume` as for a socket.
    /// The caller writes the greeting before the stream's first pump.
    func attach(_ stream: any PushStream, for client: ClientID, resume: ResumeRequest?) -> StreamAttachment {
        let attachment = withPlacedSlot(client) { slot -> StreamAttachment in
            guard slot.session == nil else { return .refused }
            slot.stream?.end()
            slot.stream = stream
            endGrace(client)
            if slot.announce() { events.enqueue(.connected(client)) }
            return .attached(startResume(resume, writer: stream, in: &slot)?.greeting)
        } ?? .noPlace
        events.tellWaiting(untilTold: true)
        if case .attached = attachment { stream.messagesAvailable() }
        return attachment
    }

    /// The oldest buffered push for `stream`'s id, removed, as the parts to write (numbered if
    /// the id resumes) and the bytes of the budget it still holds, which the stream gives back
    /// once its connection has written them (taken back at once, a stream that did not read held
    /// up to 16 MiB in its channel outside the budget); nil when none waits, when the stream is
    /// no longer the id's receiver (a socket or another stream took over), or while a socket's
    /// handshake for the id is accepted: its client is told it is back, and a push made after
    /// that must come over it.
    func takeNext(for client: ClientID, stream: any PushStream) -> (parts: [Message], bytes: Int)? {
        let (taken, waiters): ((parts: [Message], bytes: Int)?, [@Sendable () -> Void]) = slots.withLockedValue { slots in
            guard slots[client]?.stream === stream, slots[client]?.replaced.isEmpty == true, slots[client]?.handshakes == 0,
                  let entry = slots[client]?.buffer.popFirst(keepReservation: true)
            else { return (nil, []) }
            let message = entry.message
            // Under the lock the stream is the id's writer: numbering can't be refused.
            let parts = slots[client]?.resume?.stamp(splitting: message, writer: ObjectIdentifier(stream)) ?? message.split()
            return ((parts, entry.bytes), takeWaitersIfWritable(client, in: &slots))
        }
        for waiter in waiters { waiter() }
        return taken
    }

    /// Forgets `stream` if it is still the id's receiver; the id's grace period starts.
    func detach(_ stream: any PushStream, for client: ClientID) {
        slots.withLockedValue { slots in
            guard slots[client]?.stream === stream else { return }
            slots[client]!.stream = nil
            guard slots[client]!.session == nil else { return }
            slots[client]!.resume?.idle()
            if slots[client]!.isAway { startGrace(client) }
        }
    }

    func newSlot() -> Slot {
        Slot(buffer: MessageQueue(byteLimit: settings.pushBufferBytes, countLimit: settings.pushBufferMessages, budget: budget))
    }

    /// Every open session (to close them at pause or shutdown).
    var sessions: [Session] {
        slots.withLockedValue { $0.values.compactMap(\.session) }
    }

    // MARK: Diagnostics

    /// The ids with an open socket (or one whose 101 is on the way), in the order of their names.
    var connectedIDs: [String] {
        slots.withLockedValue { $0.compactMap { client, slot in slot.isConnected ? client.rawValue : nil } }.sorted()
    }

    /// One client id as diagnostics show it.
    public struct ClientSnapshot: Sendable, Codable, Equatable {
        public let id: String
        public let connected: Bool
        /// An IPC fallback stream receives the id's pushes.
        public let streaming: Bool
        /// Pushes made to the id.
        public let pushes: Int
        /// Pushes waiting in the id's buffer (no socket, or on their way to it).
        public let buffered: Int
        public let bufferedBytes: Int
        /// Pushes dropped or refused by the id's buffer (a bound reached).
        public let dropped: Int
        /// Messages waiting for the socket to become writable.
        public let outboundQueued: Int
        public let outboundQueuedBytes: Int
        /// Messages dropped by the outbound policy (slow reader).
        public let outboundDropped: Int
        /// Positions, window and counts of a resuming id (SPEC §9); nil for a plain one.
        public let resume: ResumeSnapshot?
    }

    /// Which ids a snapshot shows: listing the whole table (65,536 ids by default) made a
    /// diagnostics answer of 30 MB.
    public enum Listing: Sendable {
        /// The first ones in the order of their names.
        case first(Int)
        /// This one, if the host holds it.
        case only(ClientID)
    }

    public var snapshot: [ClientSnapshot] { snapshot(listing: .first(.max)) }

    public func snapshot(listing: Listing) -> [ClientSnapshot] {
        let listed: [ClientID] =
            switch listing {
            // Sorted outside the table's lock, which every push and handshake takes: sorting
            // 65,536 ids under it is milliseconds of every other thread waiting.
            case .first(let count): Array(slots.withLockedValue { Array($0.keys) }.sorted { $0.rawValue < $1.rawValue }.prefix(count))
            case .only(let client): [client]
            }
        // An id gone since is left out.
        return slots.withLockedValue { slots in
            listed.compactMap { client in
                guard let slot = slots[client] else { return nil }
                return ClientSnapshot(
                    id: client.rawValue, connected: slot.isConnected, streaming: slot.stream != nil, pushes: slot.pushed,
                    buffered: slot.buffer.count, bufferedBytes: slot.buffer.bytes, dropped: slot.dropped,
                    outboundQueued: slot.session?.queuedMessages.load(ordering: .relaxed) ?? 0,
                    outboundQueuedBytes: slot.session?.queuedBytes.load(ordering: .relaxed) ?? 0,
                    outboundDropped: slot.session?.droppedMessages.load(ordering: .relaxed) ?? 0,
                    resume: slot.resume?.snapshot
                )
            }
        }
    }
}

/// An IPC fallback receiver of one id's pushes (SPEC §6). Both calls may come under the
/// directory's lock: implementations only hop to their event loop.
protocol PushStream: AnyObject, Sendable {
    /// Pushes wait in the id's buffer; the stream takes them with `takeNext` as it writes.
    func messagesAvailable()
    /// A socket or another stream took over the id.
    func end()
}
