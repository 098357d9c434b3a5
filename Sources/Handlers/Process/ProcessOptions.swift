public import ConduitKit

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
public struct ProcessOptions: HandlerOptions {
    public var command: [String] = []
    public var workingDirectory: String?
    public var environment: [String: String] = [:]
    public var requestTimeoutSeconds = 30.0
    public var restartAfterTimeouts = 3
    public var maxInFlight = 1024
    public var restartDelaySeconds = 0.1
    public var maxRestartDelaySeconds = 10.0
    public var maxMessageBytes = 16 << 20

    public init() {}

    public func validate() throws(InvalidOption) {
        guard let program = command.first, !program.isEmpty else {
            throw InvalidOption("command", "needs at least a program, e.g. [python3, handlers/example.py]")
        }
        // Past these maxima a conversion to a time or a buffer size would trap.
        try InvalidOption.checkSeconds("requestTimeoutSeconds", requestTimeoutSeconds, maximum: 86_400)
        try Self.positive("restartAfterTimeouts", restartAfterTimeouts, maximum: 1_000_000)
        try Self.positive("maxInFlight", maxInFlight, maximum: 1_000_000)
        try InvalidOption.checkSeconds("restartDelaySeconds", restartDelaySeconds, maximum: 3600)
        try InvalidOption.checkSeconds("maxRestartDelaySeconds", maxRestartDelaySeconds, maximum: 86_400)
        // Else the first delay was used as it was, past the longest the configuration allows.
        guard restartDelaySeconds <= maxRestartDelaySeconds else {
            throw InvalidOption("restartDelaySeconds", "must be at most maxRestartDelaySeconds (\(maxRestartDelaySeconds))")
        }
        try Self.positive("maxMessageBytes", maxMessageBytes, maximum: 1 << 30)
    }

    private static func positive<Number: Comparable & Numeric>(_ option: String, _ value: Number, maximum: Number) throws(InvalidOption) {
        guard value > 0, value <= maximum else { throw InvalidOption(option, "must be greater than 0 and at most \(maximum)") }
    }
}
