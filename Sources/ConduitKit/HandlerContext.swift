public import ConduitWire
public import CoreMetrics
public import Logging
public import NIOCore
import Synchronization

/// What the host gives a handler when it is created.
public struct HandlerContext: Sendable {
    /// The route pattern the handler is registered under (`echo`, `udp.*`).
    public let route: String
    /// Tagged with the route; log with constant messages and dotted metadata keys.
    public let logger: Logger
    /// Pushes messages to any client id.
    public let pushes: any PushSink
    /// For handlers that open their own sockets (UDP, TLS).
    public let eventLoopGroup: any EventLoopGroup
    /// Where the handler's metrics go (`Counter(label:dimensions:factory:)`): the host's, so
    /// they are in its `/metrics` (the global one unless the host was given another).
    public let metrics: any MetricsFactory

    public init(
        route: String, logger: Logger, pushes: any PushSink, eventLoopGroup: any EventLoopGroup, metrics: any MetricsFactory = MetricsSystem.factory
    ) {
        self.route = route
        self.logger = logger
        self.pushes = pushes
        self.eventLoopGroup = eventLoopGroup
        self.metrics = metrics
    }

    /// The full route of `operation` under this handler's mount: `dgram.data` for `data` under
    /// `dgram.*`. Name pushes with it, so they follow the mount as requests do.
    public func route(_ operation: String) -> String {
        RouteMount.route(of: operation, under: route)
    }
}

/// How a push may be treated when the client's queue is full (SPEC §3 "Drops are whole",
/// "Byte streams lose no bytes").
public enum PushDelivery: Sendable, Equatable {
    /// Datagrams, tokens of a lossy feed: under the drop-oldest policy an older droppable
    /// message may be dropped (whole) to make room for a newer one.
    case droppable
    /// As `.droppable`, and each one the host drops after accepting it (evicted by a newer
    /// message, released when the id expires) is counted in the tally: an accepted push
    /// (`.sent`, `.buffered`) is not yet delivered, and its source can so account for every one.
    case droppableTallied(DropTally)
    /// One piece of a byte stream: once accepted it is never dropped, so a stream never gets a
    /// hole; when there is no room it is refused (`.dropped`) and the stream must end.
    case reliable

    public var isDroppable: Bool {
        if case .reliable = self { false } else { true }
    }

    /// Counts one message of this delivery dropped after it was accepted.
    package func countDropped() {
        if case .droppableTallied(let tally) = self { tally.add() }
    }
}

/// How many of a source's accepted pushes the host dropped later (`.droppableTallied`).
public final class DropTally: Sendable, Equatable {
    private let dropped = Atomic<Int>(0)

    public init() {}

    public var count: Int { dropped.load(ordering: .relaxed) }

    fileprivate func add() { dropped.add(1, ordering: .relaxed) }

    /// One tally is equal only to itself: two sources counting apart are two deliveries.
    public static func == (lhs: DropTally, rhs: DropTally) -> Bool { lhs === rhs }
}

/// Why a message was not kept. A bounded set: these are metric labels.
public enum DropCause: String, Sendable, Codable, CaseIterable, Hashable {
    /// A per-socket or per-id bound (bytes or messages) was reached.
    case queueFull = "queue-full"
    /// All buffers of the host together reached the host-wide budget.
    case hostBudget = "host-budget"
    /// The id's grace period ended with the message still buffered.
    case expired
    /// The message breaks a wire limit (too many headers, a key or value too long). The host
    /// keeps room for the headers it adds on the way out: at most 254 of a push's own, 253 with
    /// a payload it must split (docs/protocol.md).
    case unencodable
    /// The id is new and the host holds `limits.maxClients` ids: a push never takes an id's
    /// place (a client arriving does, from the id away the longest).
    case tooManyClients = "too-many-clients"

    /// Refused for want of room (the id's buffer or the host's budget full): the same push may
    /// be taken once there is some.
    public var isWantOfRoom: Bool { self == .queueFull || self == .hostBudget }
}

/// What happened to a push: only `sent` and `buffered` mean the message was accepted.
public enum PushOutcome: Sendable, Equatable {
    /// Queued for the client's open socket (written as soon as it can take it).
    case sent
    /// The id has no open socket: kept in its buffer until it (re)connects.
    case buffered
    /// Accepted into the id's buffer, which dropped its oldest droppable message(s) to make room.
    case bufferedDroppingOldest
    /// Not accepted, and why.
    case dropped(DropCause)

    public var isAccepted: Bool {
        if case .dropped = self { false } else { true }
    }
}

/// Sends messages to clients by id (SPEC §3 pushes). Payloads over one frame are split, and
/// the parts are kept or dropped together. Pushes to one id are delivered in the order they
/// were made.
///
/// Backpressure: a source that can wait (a byte stream, a generator) pushes `.reliable`, and
/// while `isCongested` says the client's queue is over the high-water mark it stops producing
/// until `whenWritable` calls back (queue under the low-water mark).
public protocol PushSink: Sendable {
    @discardableResult
    func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome

    /// True while `client` has an open socket.
    func isConnected(_ client: ClientID) -> Bool

    /// True while the bytes queued for `client` (on its socket or in its buffer) are over the
    /// host's high-water mark.
    func isCongested(_ client: ClientID) -> Bool

    /// Calls `body` once, from any thread: when the bytes queued for `client` fall under the
    /// low-water mark (at once if they already are), or when the id expires — or earlier, when
    /// many wait for the id (the host keeps 64): check `isCongested` again when called.
    func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void)
}

extension PushSink {
    /// A droppable push.
    @discardableResult
    public func push(_ message: Message, to client: ClientID) -> PushOutcome {
        push(message, to: client, delivery: .droppable)
    }

    /// Waits until `client` is no longer congested, its id expired, or the task is cancelled.
    public func writable(_ client: ClientID) async {
        // Called back early (many wait for the id), it waits again while the id is congested.
        while isCongested(client), !Task.isCancelled {
            let waiter = Wakeup()
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    waiter.wait(continuation)
                    whenWritable(client) { waiter.wake() }
                }
            } onCancel: {
                waiter.wake()
            }
        }
    }
}
