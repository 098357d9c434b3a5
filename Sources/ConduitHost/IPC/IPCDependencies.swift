import ConduitKit
import NIOCore

/// What every IPC connection shares.
struct IPCDependencies: Sendable {
    let control: HostControl
    let registry: RouteRegistry
    let directory: ClientDirectory
    /// What `/metrics` answers; nil: the host exports no metrics.
    let metricsExposition: (@Sendable () -> [UInt8])?
    /// Served as is, keyed by path (`/`, `/conduit.js`).
    let resources: [String: StaticResource]
    /// The largest request body accepted (no 64 KiB frame limit on this path).
    let maxBodyBytes: Int
    /// How long a routed request may go without a reply before it is answered `TimeoutError`.
    let replyTimeout: TimeAmount
    let limits: IPCLimits
    let controlCalls = ControlCallCount()
}

/// The IPC listener's bounds (SPEC §8): connections open at once, and how long a connection
/// may wait for a request's head or its body.
struct IPCLimits: Sendable {
    let maxConnections: Int
    let idleTimeout: TimeAmount
    let bodyTimeout: TimeAmount

    init(_ settings: HostSettings) {
        // At most a quarter of the descriptors, as waiting handshakes: idle connections without
        // the key took all of them, and a keyed call waited in the backlog until they timed out
        // (making room from unproven ones happens only at this bound).
        maxConnections = min(settings.ipcMaxConnections, max(2, DescriptorLimit.current / 4))
        idleTimeout = .fractionalSeconds(settings.ipcIdleTimeoutSeconds)
        bodyTimeout = .fractionalSeconds(settings.ipcBodyTimeoutSeconds)
    }
}
