import ConduitKit
import ConduitWire

/// A relay to an id held by another host (SPEC §10). It is sent at once, in the order the
/// connection made it, and answered like a local relay when the holder says whether it took
/// it. The relays waiting for that count against the connection's requests in flight.
enum ClusterRelay {
    static func start(
        _ message: Message, to target: ClientID, through cluster: any ClusterLink, answering session: Session,
        correlation: (name: String, value: String)?, inFlight: InFlightLimit?, metrics: HostMetrics
    ) {
        // The relayed message is sent at once: it holds no bytes while the answer is awaited.
        if let refusal = inFlight?.acquire(bytes: 0) {
            metrics.errorReplied(type: refusal.kind.name)
            return session.send(ReplyBuilder.message(for: .failure(refusal), route: nil, correlation: correlation))
        }
        let (name, value) = (correlation?.name, correlation?.value)
        cluster.relay(message, to: target) { failure in
            inFlight?.release(bytes: 0)
            let correlation = name.flatMap { name in value.map { (name: name, value: $0) } }
            if let failure {
                metrics.errorReplied(type: failure.kind.name)
                session.send(ReplyBuilder.message(for: .failure(failure), route: nil, correlation: correlation))
            } else if let correlation {
                session.send(ReplyBuilder.delivered(correlation))
            }
        }
    }
}
