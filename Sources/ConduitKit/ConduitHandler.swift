public import ConduitWire

/// A handler module: the one protocol a module implements (SPEC §4).
///
/// The host creates one instance per route entry from its parsed `Options`, calls `start`
/// before the first request and `stop` at shutdown or when a reload removes the entry.
/// `handle` is called for each request in the order one connection sent them, on that
/// connection's event loop: answer at once (like echo) or hand slow work to
/// `responder.respond { … }` or your own task; never block. An error thrown from `handle` is
/// answered as an error reply; it never takes down the host.
public protocol ConduitHandler: Sendable {
    /// The handler's options from the route entry; decoded from YAML, so a type error is
    /// reported at start-up with file, line and column. Make it a `HandlerOptions` struct:
    /// declared defaults hold, unknown keys are refused, `validate` checks ranges.
    associatedtype Options: Decodable & Sendable = NoOptions

    init(options: Options, context: HandlerContext) throws

    func handle(_ request: Request, responder: Responder) throws

    func start() async throws
    func stop() async
    /// Connections coming and going, so stream handlers can keep or release per-id state.
    func clientEvent(_ event: ClientEvent)
    /// Whether the handler can serve, and why not: shown per route in the diagnostics.
    var health: HandlerHealth { get }
    /// Counters and states of the handler's own (connections, peers), shown under its route
    /// in the diagnostics; nil when it has none.
    var diagnostics: [String: DiagnosticValue]? { get }
}

extension ConduitHandler {
    public func start() async throws {}
    public func stop() async {}
    public func clientEvent(_ event: ClientEvent) {}
    public var health: HandlerHealth { .up }
    public var diagnostics: [String: DiagnosticValue]? { nil }
}


/// A handler's state as the diagnostics show it.
public enum HandlerHealth: Sendable, Equatable {
    case up
    /// It answers every request `UnavailableError` with `reason` until something changes.
    case down(reason: String)

    public var downReason: String? {
        if case .down(let reason) = self { reason } else { nil }
    }
}

/// For handlers without options: any options given are an error at start-up.
public struct NoOptions: HandlerOptions {
    public init() {}
}

/// A client id's socket life, as a stream handler needs it.
public enum ClientEvent: Sendable, Equatable {
    /// A socket opened for the id (first time, or after a disconnect), or the host began to
    /// hold an id through IPC alone (its events stream, or an invocation naming it): once.
    case connected(ClientID)
    /// A second socket with the same id replaced the first; the id's streams continue.
    case replaced(ClientID)
    /// The id's socket closed; it may come back within the grace period.
    case disconnected(ClientID)
    /// The id stayed away for the whole grace period: release its streams.
    case expired(ClientID)
}
