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
public final class ClientDirectory: PushSink, Sendable {
    struct Slot {
        var session: Session?
        var buffer = CircularBuffer<Message>()
        var pushed = 0
        var dropped = 0
        var expiry: Scheduled<Void>?
    }

    private let slots = NIOLockedValueBox<[ClientID: Slot]>([:])
    private let paused = NIOLockedValueBox(false)
    private let bufferLimit: Int
    private let gracePeriod: TimeAmount
    private let timers: any EventLoop
    private let events: @Sendable (ClientEvent) -> Void

    init(settings: HostSettings, timers: any EventLoop, events: @escaping @Sendable (ClientEvent) -> Void) {
        self.bufferLimit = settings.pushBufferMessages
        self.gracePeriod = .nanoseconds(Int64(settings.clientGraceSeconds * 1e9))
        self.timers = timers
        self.events = events
    }

    // MARK: Pushes

    @discardableResult
    public func push(_ message: Message, to client: ClientID) -> PushOutcome {
        let (session, outcome): (Session?, PushOutcome) = withSlot(client) { slot in
            slot.pushed += 1
            if let session = slot.session { return (session, .sent) }
            return (nil, Self.buffer(message, in: &slot, limit: bufferLimit))
        }
        // Sent outside the lock: a send can close the socket, which comes back here.
        session?.send(message)
        return outcome
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
            for message in messages.reversed() where bufferLimit > 0 {
                slot.buffer.prepend(message)
            }
            while slot.buffer.count > bufferLimit {
                slot.buffer.removeLast()
                slot.dropped += 1
            }
            return nil
        }
        for message in messages { session?.send(message) }
    }

    /// Runs `body` on the id's slot in place (no copy of its buffer), under the lock.
    private func withSlot<Result>(_ client: ClientID, _ body: (inout Slot) -> Result) -> Result {
        slots.withLockedValue { body(&$0[client, default: Slot()]) }
    }

    private static func buffer(_ message: Message, in slot: inout Slot, limit: Int) -> PushOutcome {
        guard limit > 0 else {
            slot.dropped += 1
            return .bufferedDroppingOldest
        }
        var outcome = PushOutcome.buffered
        if slot.buffer.count >= limit {
            slot.buffer.removeFirst()
            slot.dropped += 1
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
        let (replaced, buffered): (Session?, CircularBuffer<Message>) = withSlot(session.client) { slot in
            let old = slot.session
            slot.session = session
            slot.expiry?.cancel()
            slot.expiry = nil
            defer { slot.buffer = CircularBuffer() }
            return (old, slot.buffer)
        }
        for message in buffered { session.send(message) }
        if let replaced {
            replaced.close(code: .normalClosure, reason: "replaced")
            events(.replaced(session.client))
        } else {
            events(.connected(session.client))
        }
    }

    /// Forgets `session` if it is still the id's socket and starts the grace period.
    func detach(_ session: Session) {
        let wasCurrent = slots.withLockedValue { slots in
            guard slots[session.client]?.session === session else { return false }
            slots[session.client]?.session = nil
            if !paused.withLockedValue({ $0 }) {
                slots[session.client]?.expiry = scheduleExpiry(session.client)
            }
            return true
        }
        if wasCurrent { events(.disconnected(session.client)) }
    }

    /// While paused, ids don't expire: a pause is not a client leaving.
    func setPaused(_ isPaused: Bool) {
        paused.withLockedValue { $0 = isPaused }
        slots.withLockedValue { slots in
            for (client, slot) in slots where slot.session == nil {
                slot.expiry?.cancel()
                slots[client]?.expiry = isPaused ? nil : scheduleExpiry(client)
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
                    id: client.rawValue, connected: slot.session != nil, pushes: slot.pushed,
                    buffered: slot.buffer.count, dropped: slot.dropped,
                    outboundQueued: slot.session?.queuedMessages.load(ordering: .relaxed) ?? 0,
                    outboundDropped: slot.session?.droppedMessages.load(ordering: .relaxed) ?? 0
                )
            }.sorted { $0.id < $1.id }
        }
    }
}
