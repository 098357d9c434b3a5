public import ConduitKit
import ConduitNATS
public import ConduitWire
public import NIOCore

/// Hosts sharing client ids over NATS (SPEC §10 "Several hosts"). Each host subscribes to
/// `conduit.push.<id>` for the ids it holds; a relay to an id without a socket here is a NATS
/// request on that subject, answered by the holder; NATS' no-responders status means no host
/// holds it (`NotFoundError`), so there is no directory of our own to keep consistent.
public final class NATSClusterLink: ClusterLink {
    /// How long the holder has to say whether it took a relay.
    static let relayTimeout = Duration.seconds(5)

    private let client: NATSClient
    private let held: HeldClientPushes
    private let name: String
    private let metrics: NATSMetricsExport

    public init(settings: ClusterSettings, pushes: any PushSink, eventLoopGroup: any EventLoopGroup) throws(NATSError) {
        client = NATSClient(options: try NATSClientOptions(url: settings.nats, name: "conduit host \(settings.name)"), eventLoopGroup: eventLoopGroup)
        held = HeldClientPushes(client: client, pushes: pushes)
        name = settings.name
        metrics = NATSMetricsExport(client: client, owner: "cluster", eventLoop: eventLoopGroup.next())
    }

    /// For `ConduitHost(cluster:)`.
    public static let factory: ClusterLinkFactory = { settings, pushes, group in
        try NATSClusterLink(settings: settings, pushes: pushes, eventLoopGroup: group)
    }

    public func start() async throws {
        client.start()
        held.start()
        metrics.start()
    }

    public func stop() async {
        held.stop()
        await client.close()
        metrics.stop()
    }

    public func clientEvent(_ event: ClientEvent) {
        held.clientEvent(event)
    }

    public func relay(_ message: Message, to target: ClientID, completion: @escaping @Sendable (ConduitError?) -> Void) {
        var headers = NATSHeaders(message.headers)
        headers.append(HeldClientPushes.relayHeader, "true")
        client.request(HeldClientPushes.subject(for: target), headers: headers, payload: message.payload, timeout: Self.relayTimeout) { result in
            switch result {
            case .failure(.noResponders):
                completion(.notFound("client '\(target)' has no open socket on any host of the cluster"))
            case .failure(.timedOut):
                // Not a worker's silence (the route's wording): the relay may well have been
                // delivered, and only its answer was late.
                completion(.unavailable("the host holding client '\(target)' did not say within \(Self.relayTimeout) whether it took the relay; it may have"))
            case .failure(let error):
                completion(ConduitError(error))
            case .success(let answer):
                switch answer.headers[HeldClientPushes.acceptedHeader] ?? "no answer" {
                case "true": completion(nil)
                case HeldClientPushes.noSocket: completion(.notFound("client '\(target)' has no open socket"))
                case let cause: completion(.relayRefused(to: target, cause: cause))
                }
            }
        }
    }

    public var diagnostics: [String: DiagnosticValue] {
        var values = client.diagnostics
        values["nats.host"] = .text(name)
        return values
    }
}

extension NATSClient {
    /// The connection's state and counters under `nats.*` keys, as every NATS user shows them.
    var diagnostics: [String: DiagnosticValue] {
        let statistics = statistics
        return [
            "nats.url": .text(options.displayURL),
            "nats.state": .text(connectionState.rawValue),
            "nats.reconnects": .number(statistics.reconnects),
            "nats.messagesIn": .number(statistics.messagesIn),
            "nats.messagesOut": .number(statistics.messagesOut),
            "nats.bytesIn": .number(statistics.bytesIn),
            "nats.bytesOut": .number(statistics.bytesOut),
            "nats.requestsTimedOut": .number(statistics.requestsTimedOut),
            "nats.noResponders": .number(statistics.noResponders),
            "nats.malformedMessages": .number(statistics.malformedMessages),
            "nats.lastError": .text(lastError ?? ""),
        ]
    }
}
