public import ConduitKit
public import ConduitWire
import Synchronization

/// A `PushSink` for handler tests: records every push, and lets the test say which clients are
/// away (pushes to them are `buffered`) and which are congested (`whenWritable` waits until
/// the test clears it).
public final class RecordingPushSink: PushSink {
    public struct Push: Sendable {
        public let message: Message
        public let client: ClientID
        public let delivery: PushDelivery
    }

    private struct State {
        var pushes: [Push] = []
        var away: Set<ClientID> = []
        var congested: Set<ClientID> = []
        var waiters: [ClientID: [@Sendable () -> Void]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Every push so far, in order.
    public var all: [Push] { state.withLock { $0.pushes } }

    /// The messages pushed to `client` so far, in order.
    public func messages(to client: ClientID) -> [Message] {
        state.withLock { $0.pushes.filter { $0.client == client }.map(\.message) }
    }

    /// Refuses, as the host does, a message without room for the headers the host adds on the
    /// way out (`DropCause.unencodable`); the rest are recorded.
    @discardableResult
    public func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome {
        guard (try? message.validateForSending()) != nil else { return .dropped(.unencodable) }
        return state.withLock { state in
            state.pushes.append(Push(message: message, client: client, delivery: delivery))
            return state.away.contains(client) ? .buffered : .sent
        }
    }

    public func isConnected(_ client: ClientID) -> Bool { state.withLock { !$0.away.contains(client) } }

    public func isCongested(_ client: ClientID) -> Bool { state.withLock { $0.congested.contains(client) } }

    public func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state in
            guard state.congested.contains(client) else { return true }
            state.waiters[client, default: []].append(body)
            return false
        }
        if now { body() }
    }

    /// Marks `client` away (its socket closed) or back.
    public func setConnected(_ client: ClientID, _ connected: Bool) {
        state.withLock { state in
            if connected { state.away.remove(client) } else { state.away.insert(client) }
        }
    }

    /// Marks `client`'s queue over the high-water mark, or under the low one (waking whoever
    /// waits in `whenWritable`).
    public func setCongested(_ client: ClientID, _ congested: Bool) {
        let woken = state.withLock { state -> [@Sendable () -> Void] in
            if congested {
                state.congested.insert(client)
                return []
            }
            state.congested.remove(client)
            return state.waiters.removeValue(forKey: client) ?? []
        }
        for waiter in woken { waiter() }
    }
}
