/// The `options` of a `process` route entry.
///
/// ```yaml
/// options:
///   command: [python3, handlers/example.py]   # required; a bare name is looked up in PATH
///   workingDirectory: .                       # relative to the host's working directory
///   environment: {LOG_LEVEL: debug}           # added to the host's environment
///   requestTimeoutSeconds: 30                 # unanswered for this long: TimeoutError
///   restartAfterTimeouts: 3                   # this many timeouts in a row: the child is killed
///   maxInFlight: 1024                         # requests waiting for the child; more: UnavailableError
///   restartDelaySeconds: 0.1                  # first restart delay, doubled up to the next one
///   maxRestartDelaySeconds: 10
///   maxMessageBytes: 16777216                 # one message from the child, its parts joined
/// ```
public struct ProcessOptions: Decodable, Sendable {
    public var command: [String]
    public var workingDirectory: String?
    public var environment: [String: String]
    public var requestTimeoutSeconds: Double
    public var restartAfterTimeouts: Int
    public var maxInFlight: Int
    public var restartDelaySeconds: Double
    public var maxRestartDelaySeconds: Double
    public var maxMessageBytes: Int

    private enum Key: String, CodingKey, CaseIterable {
        case command, workingDirectory, environment, requestTimeoutSeconds, restartAfterTimeouts
        case maxInFlight, restartDelaySeconds, maxRestartDelaySeconds, maxMessageBytes
    }

    public init(from decoder: any Decoder) throws {
        try OptionNames.rejectUnknown(in: decoder, known: Key.allCases.map(\.rawValue))
        let options = try decoder.container(keyedBy: Key.self)
        command = try options.decode([String].self, forKey: .command)
        workingDirectory = try options.decodeIfPresent(String.self, forKey: .workingDirectory)
        environment = try options.decodeIfPresent([String: String].self, forKey: .environment) ?? [:]
        requestTimeoutSeconds = try options.positive(.requestTimeoutSeconds, default: 30, maximum: 86_400)
        restartAfterTimeouts = try options.positive(.restartAfterTimeouts, default: 3, maximum: 1_000_000)
        maxInFlight = try options.positive(.maxInFlight, default: 1024, maximum: 1_000_000)
        restartDelaySeconds = try options.positive(.restartDelaySeconds, default: 0.1, maximum: 3600)
        maxRestartDelaySeconds = try options.positive(.maxRestartDelaySeconds, default: 10, maximum: 86_400)
        maxMessageBytes = try options.positive(.maxMessageBytes, default: 16 << 20, maximum: 1 << 30)
        guard let program = command.first, !program.isEmpty else {
            throw DecodingError.dataCorruptedError(
                forKey: .command, in: options, debugDescription: "the command needs at least a program, e.g. [python3, handlers/example.py]")
        }
    }
}

extension KeyedDecodingContainer {
    /// A number above 0 and at most `maximum`: past it a conversion to a time would trap.
    fileprivate func positive<Number: Decodable & Comparable & Numeric>(_ key: Key, default value: Number, maximum: Number) throws -> Number {
        guard let number = try decodeIfPresent(Number.self, forKey: key) else { return value }
        guard number > 0, number <= maximum else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "'\(key.stringValue)' must be greater than 0 and at most \(maximum)")
        }
        return number
    }
}

/// Refuses option names the handler doesn't know, so a typo is an error at start-up, not a
/// silently ignored setting.
private enum OptionNames {
    struct AnyKey: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    static func rejectUnknown(in decoder: any Decoder, known: [String]) throws {
        let options = try decoder.container(keyedBy: AnyKey.self)
        if let unknown = options.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw DecodingError.dataCorruptedError(
                forKey: unknown, in: options,
                debugDescription: "unknown option '\(unknown.stringValue)'; known: \(known.joined(separator: ", "))")
        }
    }
}
