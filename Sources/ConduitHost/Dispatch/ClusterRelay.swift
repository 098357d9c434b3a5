import ConduitKit
import ConduitWire

/// A relay to an id held by another host (SPEC §10): it waits for the cluster's answer in a
/// task, then answers the sender like a local relay.
enum ClusterRelay {
    static func start(
        _ message: Message, to target: ClientID, through cluster: any ClusterLink, answering session: Session,
        correlation: (name: String, value: String)?, metrics: HostMetrics
    ) {
        let token = correlation.map { [$0.name, $0.value] }
        Task {
            let correlation = token.map { (name: $0[0], value: $0[1]) }
            do {
                try await cluster.relay(message, to: target)
                if let correlation { session.send(ReplyBuilder.delivered(correlation)) }
            } catch {
                let failure = ConduitError(converting: error)
                metrics.errorReplied(type: failure.kind.name)
                session.send(ReplyBuilder.message(for: .failure(failure), route: nil, correlation: correlation))
            }
        }
    }
}
