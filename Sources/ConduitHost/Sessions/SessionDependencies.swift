import ConduitKit
import Logging

/// What every session shares: settings, the route registry, the client directory, metrics.
struct SessionDependencies: Sendable {
    /// The protocol a listener speaks.
    enum Mode: Sendable {
        /// Conduit messages (the product).
        case conduit
        /// Echoes text and binary frames on any path, without a key: only for running the
        /// Autobahn conformance suite against the same WebSocket stack.
        case conformanceEcho
    }

    let settings: HostSettings
    let mode: Mode
    let registry: RouteRegistry
    let directory: ClientDirectory
    let metrics: HostMetrics
    let sharedKey: SharedKey
    /// Where a relay to an id without a socket here goes (nil: a host alone).
    let cluster: (any ClusterLink)?
}
