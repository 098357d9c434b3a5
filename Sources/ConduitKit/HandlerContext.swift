public import ConduitWire
public import Logging
public import NIOCore

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

    public init(route: String, logger: Logger, pushes: any PushSink, eventLoopGroup: any EventLoopGroup) {
        self.route = route
        self.logger = logger
        self.pushes = pushes
        self.eventLoopGroup = eventLoopGroup
    }
}

/// What happened to a push.
public enum PushOutcome: Sendable, Equatable {
    /// Handed to the client's open socket.
    case sent
    /// The id has no open socket: kept in its buffer until it (re)connects.
    case buffered
    /// The id's buffer was full: the oldest buffered message was dropped to make room.
    case bufferedDroppingOldest
}

/// Sends messages to clients by id (SPEC §3 pushes). Payloads over one frame are split.
/// Pushes to one id are delivered in the order they were made.
public protocol PushSink: Sendable {
    @discardableResult
    func push(_ message: Message, to client: ClientID) -> PushOutcome

    /// True while `client` has an open socket.
    func isConnected(_ client: ClientID) -> Bool
}
