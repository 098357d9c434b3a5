import ConduitKit
import NIOConcurrencyHelpers

/// Tells the directory's client events to the cluster link and to the routes' handlers. The
/// host owns it; the directory that calls it holds it weakly. Held strongly, the directory
/// held the registry, whose maker of handler contexts holds the directory: a cycle, and every
/// host that stopped stayed in memory with its directory, routes and handlers.
final class ClientEventRelay: Sendable {
    private let targets = NIOLockedValueBox<(cluster: (any ClusterLink)?, registry: RouteRegistry?)>((nil, nil))

    /// Set as each is made: events before the registry exists go to the cluster link alone.
    func setCluster(_ cluster: (any ClusterLink)?) { targets.withLockedValue { $0.cluster = cluster } }
    func setRegistry(_ registry: RouteRegistry) { targets.withLockedValue { $0.registry = registry } }

    func tell(_ event: ClientEvent) {
        let (cluster, registry) = targets.withLockedValue { $0 }
        cluster?.clientEvent(event)
        guard let registry else { return }
        for route in registry.table.routes { route.handler.clientEvent(event) }
    }
}
