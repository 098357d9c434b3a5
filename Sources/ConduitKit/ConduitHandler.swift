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
    /// reported at start-up with file, line and column.
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
public struct NoOptions: Decodable, Sendable {
    public init() {}

    public init(from decoder: any Decoder) throws {
        let options = try decoder.container(keyedBy: AnyOptionKey.self)
        if let key = options.allKeys.first {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: options, debugDescription: "this handler takes no options, but '\(key.stringValue)' is given")
        }
    }
}

extension Decoder {
    /// Throws when the options name a key outside `known`, so a misspelt option is an error at
    /// start-up (with its position) instead of a silently kept default.
    public func rejectUnknownOptions<Key: CodingKey & CaseIterable>(_ known: Key.Type) throws {
        let options = try container(keyedBy: AnyOptionKey.self)
        let names = Set(Key.allCases.map(\.stringValue))
        if let key = options.allKeys.first(where: { !names.contains($0.stringValue) }) {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: options,
                debugDescription: "unknown option '\(key.stringValue)'; known options: \(names.sorted().map { "'\($0)'" }.joined(separator: ", "))")
        }
    }
}

private struct AnyOptionKey: CodingKey {
    let stringValue: String
    init(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// A client id's socket life, as a stream handler needs it.
public enum ClientEvent: Sendable, Equatable {
    /// A socket opened for the id (first time, or after a disconnect).
    case connected(ClientID)
    /// A second socket with the same id replaced the first; the id's streams continue.
    case replaced(ClientID)
    /// The id's socket closed; it may come back within the grace period.
    case disconnected(ClientID)
    /// The id stayed away for the whole grace period: release its streams.
    case expired(ClientID)
}
