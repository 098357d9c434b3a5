public import ConduitKit
import ConduitNATS
import ConduitWire
import Foundation
import NIOCore
import Synchronization

/// `nats`: a route served by workers anywhere, through NATS (SPEC §10). A request becomes a
/// NATS request on `subject` with the Conduit headers as NATS headers plus `conduit-client`,
/// and the worker's answer is the reply. Workers share a subject with a queue group, and push
/// to a client by publishing to `conduit.push.<client-id>`.
public final class NATSHandler: ConduitHandler {
    public typealias Options = NATSRouteOptions

    /// The header that tells a worker which client asked.
    public static let clientHeader = "conduit-client"

    private let options: NATSRouteOptions
    private let client: NATSClient
    private let pushes: HeldClientPushes
    private let metrics: NATSMetricsExport

    public init(options: NATSRouteOptions, context: HandlerContext) throws {
        self.options = options
        do {
            client = NATSClient(options: try options.clientOptions(name: "conduit \(context.route)"), eventLoopGroup: context.eventLoopGroup)
        } catch {
            throw ConduitError.badRequest(error.description)
        }
        pushes = HeldClientPushes(client: client, pushes: context.pushes)
        metrics = NATSMetricsExport(client: client, owner: context.route, eventLoop: context.eventLoopGroup.next(), factory: context.metrics)
    }

    public func start() async throws {
        // Connecting goes on in the background: a NATS server that is not up yet only makes
        // requests fail with UnavailableError until it is.
        client.start()
        pushes.start()
        metrics.start()
    }

    public func stop() async {
        pushes.stop()
        await client.close()
        metrics.stop()
    }

    public func clientEvent(_ event: ClientEvent) {
        pushes.clientEvent(event)
    }

    public func handle(_ request: Request, responder: Responder) throws {
        guard client.connectionState == .connected else {
            throw ConduitError.unavailable("the NATS connection to \(client.options.displayURL) is down; it is being restored")
        }
        let subject = options.subject == "{route}" ? request.route : options.subject.replacingOccurrences(of: "{route}", with: request.route)
        // The client's id is the host's to say: a `conduit-client` the client sent is dropped,
        // whatever its case (NATS names are case-sensitive; some clients' lookups are not).
        var sent = request.headers
        sent.removeAll(anyCaseOf: Self.clientHeader)
        var headers = NATSHeaders(sent)
        headers.append(Self.clientHeader, request.client.rawValue)
        let timeout = Duration.milliseconds(Int64(options.timeoutSeconds * 1000))
        // By callback, not in a task: the NATS request has its own timer on the connection's loop.
        responder.respondWhenDone { finish in
            let pending = Mutex<NATSPendingRequest?>(nil)
            // After the host has marked the request cancelled, so the ending answer is not sent.
            let cancellation = request.onCancel { [loop = request.eventLoop] in loop.execute { pending.withLock { $0 }?.cancel() } }
            let made = client.request(subject, headers: headers, payload: request.payload, timeout: timeout) { result in
                // Answered before the registration goes: the registry must still know a
                // cancelled request, so its ending answer is dropped (SPEC §8: one answer).
                finish(result.map { Reply(headers: Headers($0.headers), payload: $0.payload) }.mapError(ConduitError.init))
                cancellation.remove()
            }
            pending.withLock { $0 = made }
        }
    }

    public var health: HandlerHealth {
        client.connectionState == .connected ? .up
            : .down(reason: "NATS \(client.options.displayURL): \(client.connectionState.rawValue)\(client.lastError.map { " (\($0))" } ?? "")")
    }

    public var diagnostics: [String: DiagnosticValue]? { client.diagnostics }
}
