import ConduitKit
import ConduitWire
import Logging
import NIOConcurrencyHelpers
import Synchronization
import NIOCore
import NIOWebSocket

/// Client ids and their sockets (SPEC §2–§3): replacement of a live id, per-id push buffers
/// flushed in order on (re)connect, and the grace period after which an id's streams end.
///
/// One lock guards the table; messages are handed to sessions outside it (a send may close a
/// socket, which detaches it under the same lock).
///
/// An id without a socket may have one IPC fallback stream (SPEC §6). Its pushes stay in the
/// buffer and the stream takes them one by one as it writes them (`takeNext`), so whichever
/// attaches next (a socket or another stream) takes over exactly what was not yet written.
public final class ClientDirectory: PushSink, Sendable {
    struct Slot {
        var session: Session?
        var stream: (any PushStream)?
        var buffer = CircularBuffer<Message>()
        var pushed = 0
        var dropped = 0
        var expiry: Scheduled<Void>?
        /// A drain of `buffer` into `session` is scheduled on its event loop.
        var draining = false
    }

    private let slots = NIOLockedValueBox<[ClientID: Slot]>([:])
    private let paused = NIOLockedValueBox(false)
    private let bufferLimit: Int
    private let gracePeriod: TimeAmount
    private let timers: any EventLoop
    private let events: @Sendable (ClientEvent) -> Void
    private let metrics: HostMetrics

    init(settings: HostSettings, timers: any EventLoop, metrics: HostMetrics, events: @escaping @Sendable (ClientEvent) -> Void) {
        self.metrics = metrics
        self.bufferLimit = settings.pushBufferMessages
        self.gracePeriod = .nanoseconds(Int64(settings.clientGraceSeconds * 1e9))
        self.timers = timers
        self.events = events
    }

    // MARK: Pushes

    /// A push from the socket's own event loop, with nothing queued before it, is sent at once.
    /// Any other push to a live socket goes through the id's buffer, which the socket's event
    /// loop drains: a message is then never in flight outside the table, so a socket that
    /// closes meanwhile leaves it in the buffer, in order, for the next socket.
    @discardableResult
    public func push(_ message: Message, to client: ClientID) -> PushOutcome {
        enum Delivery { case now(Session), drain(Session), none }
        let (delivery, outcome): (Delivery, PushOutcome) = withSlot(client) { slot in
            slot.pushed += 1
            guard let session = slot.session else {
                let outcome = buffer(message, in: &slot)
                slot.stream?.messagesAvailable()
                return (.none, outcome)
            }
            if session.channel.eventLoop.inEventLoop, !slot.draining { return (.now(session), .sent) }
            buffer(message, in: &slot)
            guard !slot.draining else { return (.none, .sent) }
            slot.draining = true
            return (.drain(session), .sent)
        }
        // Sent outside the lock: a send can close the socket, which comes back here.
        switch delivery {
        case .now(let session): session.send(message)
        case .drain(let session): session.channel.eventLoop.execute { self.drain(into: session) }
        case .none: break
        }
        return outcome
    }

    /// Sends what waits in the id's buffer to `session`, if it is still the id's socket.
    private func drain(into session: Session) {
        let messages: CircularBuffer<Message> = slots.withLockedValue { slots in
            guard slots[session.client]?.session === session else { return [] }
            slots[session.client]?.draining = false
            defer { slots[session.client]?.buffer = CircularBuffer() }
            return slots[session.client]?.buffer ?? []
        }
        for message in messages { session.send(message) }
    }

    public func isConnected(_ client: ClientID) -> Bool {
        slots.withLockedValue { $0[client]?.session != nil }
    }

    /// Puts messages a closed session could not write back at the front of its id's buffer
    /// (or hands them to the id's new socket).
    func requeue(_ messages: some BidirectionalCollection<Message>, for client: ClientID) {
        guard !messages.isEmpty else { return }
        let session: Session? = withSlot(client) { slot in
            if let session = slot.session { return session }
            prepend(messages, to: &slot)
            return nil
        }
        for message in messages { session?.send(message) }
    }

    /// Puts older messages before what the id's buffer holds; past the bound the newest go.
    private func prepend(_ messages: some BidirectionalCollection<Message>, to slot: inout Slot) {
        guard !messages.isEmpty else { return }
        for message in messages.reversed() where bufferLimit > 0 {
            slot.buffer.prepend(message)
        }
        while slot.buffer.count > bufferLimit {
            slot.buffer.removeLast()
            slot.dropped += 1
            metrics.pushDropped()
        }
        slot.stream?.messagesAvailable()
    }

    /// Runs `body` on the id's slot in place (no copy of its buffer), under the lock.
    private func withSlot<Result>(_ client: ClientID, _ body: (inout Slot) -> Result) -> Result {
        slots.withLockedValue { body(&$0[client, default: Slot()]) }
    }

    @discardableResult
    private func buffer(_ message: Message, in slot: inout Slot) -> PushOutcome {
        guard bufferLimit > 0 else {
            slot.dropped += 1
            metrics.pushDropped()
            return .bufferedDroppingOldest
        }
        var outcome = PushOutcome.buffered
        if slot.buffer.count >= bufferLimit {
            slot.buffer.removeFirst()
            slot.dropped += 1
            metrics.pushDropped()
            outcome = .bufferedDroppingOldest
        }
        slot.buffer.append(message)
        return outcome
    }

    // MARK: Sockets coming and going

    /// Makes `session` the id's socket; an older one is closed with 1000 `replaced`. What was
    /// buffered for the id is sent first, in order. Called on the session's event loop, so a
    /// push from another thread (which hops there) can't overtake the buffered ones.
    func attach(_ session: Session) {
        session.channel.eventLoop.preconditionInEventLoop()
        // Checked under the table's lock, which a pause's closing of all sessions also takes:
        // a handshake that completes while the server is being paused is either refused here
        // or among the sessions that the pause closes.
        let admitted: (Session?, CircularBuffer<Message>)? = slots.withLockedValue { slots in
            guard !paused.withLockedValue({ $0 }) else { return nil }
            return Self.install(session, in: &slots[session.client, default: Slot()])
        }
        guard let (replaced, buffered) = admitted else {
            session.close(code: .goingAway, reason: "paused")
            return
        }
        for message in buffered { session.send(message) }
        if let replaced {
            replaced.close(code: .normalClosure, reason: "replaced")
            events(.replaced(session.client))
        } else {
            events(.connected(session.client))
        }
    }

    /// Makes `session` the slot's socket, ending a fallback stream; returns the replaced socket
    /// and what was buffered.
    private static func install(_ session: Session, in slot: inout Slot) -> (Session?, CircularBuffer<Message>) {
        let old = slot.session
        slot.session = session
        slot.stream?.end()
        slot.stream = nil
        slot.expiry?.cancel()
        slot.expiry = nil
        // A drain scheduled for the old socket finds it gone; this one is sent here.
        slot.draining = false
        defer { slot.buffer = CircularBuffer() }
        return (old, slot.buffer)
    }

    /// Forgets `session` if it is still the id's socket and starts the grace period. `unsent`,
    /// what the socket had accepted but not written, goes back to the front of the id's buffer
    /// in the same step, so no newer push and no new socket can come between.
    func detach(_ session: Session, unsent: [Message]) {
        let wasCurrent = withSlot(session.client) { slot in
            let wasCurrent = slot.session === session
            if wasCurrent {
                slot.session = nil
                slot.draining = false
                if !paused.withLockedValue({ $0 }), slot.stream == nil {
                    slot.expiry = scheduleExpiry(session.client)
                }
            }
            prepend(unsent, to: &slot)
            return wasCurrent
        }
        if wasCurrent { events(.disconnected(session.client)) }
    }

    /// While paused, ids don't expire: a pause is not a client leaving.
    func setPaused(_ isPaused: Bool) {
        paused.withLockedValue { $0 = isPaused }
        slots.withLockedValue { slots in
            for (client, slot) in slots where slot.session == nil && slot.stream == nil {
                slot.expiry?.cancel()
                slots[client]?.expiry = isPaused ? nil : scheduleExpiry(client)
            }
        }
    }

    // MARK: IPC fallback streams

    /// Makes `stream` the id's fallback receiver, ending an older one. Refused (false) while
    /// the id has an open socket: the socket receives its pushes.
    func attach(_ stream: any PushStream, for client: ClientID) -> Bool {
        let attached = withSlot(client) { slot in
            guard slot.session == nil else { return false }
            slot.stream?.end()
            slot.stream = stream
            slot.expiry?.cancel()
            slot.expiry = nil
            return true
        }
        if attached { stream.messagesAvailable() }
        return attached
    }

    /// The oldest buffered push for `stream`'s id, removed; nil when none waits or when the
    /// stream is no longer the id's receiver (a socket or another stream took over).
    func takeNext(for client: ClientID, stream: any PushStream) -> Message? {
        slots.withLockedValue { slots in
            guard slots[client]?.stream === stream else { return nil }
            return slots[client]?.buffer.popFirst()
        }
    }

    /// Forgets `stream` if it is still the id's receiver; the id's grace period starts.
    func detach(_ stream: any PushStream, for client: ClientID) {
        slots.withLockedValue { slots in
            guard slots[client]?.stream === stream else { return }
            slots[client]?.stream = nil
            if slots[client]?.session == nil, !paused.withLockedValue({ $0 }) {
                slots[client]?.expiry = scheduleExpiry(client)
            }
        }
    }

    private func scheduleExpiry(_ client: ClientID) -> Scheduled<Void> {
        timers.scheduleTask(in: gracePeriod) { [self] in
            let expired = slots.withLockedValue { slots in
                guard let slot = slots[client], slot.session == nil, slot.expiry != nil else { return false }
                if slot.buffer.isEmpty { slots[client] = nil } else { slots[client]?.expiry = nil }
                return true
            }
            if expired { events(.expired(client)) }
        }
    }

    /// Every open session (to close them at pause or shutdown).
    var sessions: [Session] {
        slots.withLockedValue { $0.values.compactMap(\.session) }
    }

    // MARK: Diagnostics

    /// One client id as diagnostics show it.
    public struct ClientSnapshot: Sendable, Codable, Equatable {
        public let id: String
        public let connected: Bool
        /// An IPC fallback stream receives the id's pushes.
        public let streaming: Bool
        /// Pushes made to the id.
        public let pushes: Int
        /// Pushes waiting in the id's buffer (no socket).
        public let buffered: Int
        /// Pushes dropped from a full buffer.
        public let dropped: Int
        /// Messages waiting for the socket to become writable.
        public let outboundQueued: Int
        /// Messages dropped by the outbound policy (slow reader).
        public let outboundDropped: Int
    }

    public var snapshot: [ClientSnapshot] {
        slots.withLockedValue { slots in
            slots.map { client, slot in
                ClientSnapshot(
                    id: client.rawValue, connected: slot.session != nil, streaming: slot.stream != nil, pushes: slot.pushed,
                    buffered: slot.buffer.count, dropped: slot.dropped,
                    outboundQueued: slot.session?.queuedMessages.load(ordering: .relaxed) ?? 0,
                    outboundDropped: slot.session?.droppedMessages.load(ordering: .relaxed) ?? 0
                )
            }.sorted { $0.id < $1.id }
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
