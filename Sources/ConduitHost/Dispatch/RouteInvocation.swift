import ConduitKit
import ConduitWire
import NIOCore

/// The part of a request's way that the WebSocket and IPC transports share (SPEC §3, §6):
/// `internal.*` refused, route lookup, counting, the handler call, replies to `destination`.
enum RouteInvocation {
    static func invoke(
        route: String, headers: Headers, payload: ByteBuffer, requestBytes: Int,
        client: ClientID, transport: Request.Transport, eventLoop: any EventLoop,
        registry: RouteRegistry, limits: RequestLimits, destination: any ReplyDestination,
        cancellations: CancellationRegistry? = nil
    ) {
        let correlation = headers.correlation
        func fail(_ error: ConduitError) {
            registry.metrics.errorReplied(type: error.kind.name)
            destination.deliver(.failure(error), to: ReplyAddress(route: route, correlation: correlation, received: .now(), counter: nil))
        }
        // Replies under a cancelled request's token are not sent until it has ended (SPEC §8:
        // answered once), so a request reusing the token meanwhile was never answered.
        if let cancellations, let correlation, cancellations.isCancelled(correlation.value) {
            return fail(.badRequest("the \(correlation.name) '\(correlation.value)' is a cancelled request's, which is still ending: use another"))
        }
        if route.hasPrefix(RoutePattern.internalPrefix) {
            return fail(.notFound(transport == .ipc ? "no control route '\(route)'" : "'\(route)' is reachable over IPC only"))
        }
        guard let entry = registry.lookup(route) else {
            return fail(.notFound("no handler for route '\(route)'"))
        }
        // Payload bytes, as replies are counted, on either transport: the socket counted whole
        // frames (headers and all) and IPC bodies, so a route's in and out compared nothing.
        entry.stats.countRequest(bytes: payload.readableBytes)
        var request = Request(
            headers: headers, payload: payload, route: route, operation: entry.isPrefixPattern ? RouteMount.operation(of: route, under: entry.entry.route) : "",
            client: client, transport: transport, eventLoop: eventLoop)
        request.cancellations = cancellations
        let responder = Responder(
            destination: destination,
            address: ReplyAddress(route: route, correlation: correlation, received: request.received, counter: entry.stats),
            tasks: entry.tasks, inFlight: limits.inFlight, defaultTimeout: limits.timeout, cancellations: cancellations,
            requestBytes: requestBytes)
        do {
            try entry.handler.handle(request, responder: responder)
        } catch {
            responder.fail(ConduitError(converting: error))
        }
    }
}
