import ConduitKit
import NIOCore

/// The supervision settings of `ProcessOptions`, as the supervisor uses them.
struct ProcessLimits: Sendable {
    let requestTimeout: TimeAmount
    /// The same, for messages.
    let requestTimeoutSeconds: Double
    let restartAfterTimeouts: Int
    let maxInFlight: Int
    let firstRestartDelay: TimeAmount
    let maxRestartDelay: TimeAmount
    let maxMessageBytes: Int
    /// A child that exits sooner than this after starting crashed at start-up...
    let startupWindow = TimeAmount.seconds(2)
    /// ...and this many such crashes in a row take the route down instead of another restart.
    let maxStartupCrashes = 5

    init(_ options: ProcessOptions) {
        requestTimeout = .fractionalSeconds(options.requestTimeoutSeconds)
        requestTimeoutSeconds = options.requestTimeoutSeconds
        restartAfterTimeouts = options.restartAfterTimeouts
        maxInFlight = options.maxInFlight
        firstRestartDelay = .fractionalSeconds(options.restartDelaySeconds)
        maxRestartDelay = .fractionalSeconds(options.maxRestartDelaySeconds)
        maxMessageBytes = options.maxMessageBytes
    }
}
