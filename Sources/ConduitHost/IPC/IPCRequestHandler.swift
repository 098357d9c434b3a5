import ConduitKit
import ConduitWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// One IPC connection (SPEC §6), past `IPCKeyGate`: serves
/// `/metrics`, static resources, the control routes, the fallback event stream, or invokes a
/// route. Requests arrive whole (aggregated) and one at a time (the pipelining handler
/// holds the next until this one's response ends).
final class IPCRequestHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    private let services: IPCDependencies
    private let logger: Logger
    /// Marks the connection a stream; false when the listener holds as many as it allows.
    private let startStream: @Sendable () -> Bool
    private var context: ChannelHandlerContext?
    /// The request being answered: its number (late replies to earlier ones are ignored) and
    /// whether the connection stays open after it.
    private var serial = 0
    private var answered = true
    private var keepAlive = true
    private var replyTimeout: Scheduled<Void>?
    /// The parts of a reply a handler sent split (`more=true`), joined into one body; the
    /// memory it takes comes from the host's budget until the socket has taken the response.
    private var replyParts: ByteBuffer?
    private var replyReservation = BudgetReservation()
    private var stream: FallbackStream?
    /// The resume replay the stream sends before any push (`pumpStream`).
    private var streamReplay: ResumeState.Replay?
    /// A request that arrived while the socket could not take more: it is handled once it can.
    private var waiting: NIOHTTPServerRequestFull?
    /// The caller shut down its side: it sends nothing more, and reads the answer it waits for.
    private var inputClosed = false
    /// The connection's requests, which a `cancel` on a socket of the id they name can stop.
    private let cancellations: CancellationRegistry
    /// The token of the request being answered and its answer: such a cancel is answered here.
    private let cancellable: NIOLockedValueBox<(token: String, answer: @Sendable (Message, String) -> Void)?>

    init(services: IPCDependencies, logger: Logger, startStream: @escaping @Sendable () -> Bool) {
        self.services = services
        self.logger = logger
        self.startStream = startStream
        let cancellable = NIOLockedValueBox<(token: String, answer: @Sendable (Message, String) -> Void)?>(nil)
        self.cancellable = cancellable
        let metrics = services.registry.metrics
        cancellations = CancellationRegistry { cancelled, token in
            // An earlier request under the token (answered 504, its work going on) has no one
            // waiting: the current request's answer ignores a call once it is answered.
            guard let current = cancellable.withLockedValue({ $0 }), current.token == token else { return }
            let error = ConduitError.cancelled("the request was cancelled by the client")
            metrics.errorReplied(type: error.kind.name)
            current.answer(ReplyBuilder.message(for: .failure(error), route: cancelled.route, correlation: (cancelled.correlation, token)), "application/json")
        }
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // The answer kept for a cancel holds this handler: kept on, the two held each other,
        // and every IPC connection whose request carried a token stayed in memory for good
        // (5 KB each, 70 KB with a 200 KB body).
        cancellable.withLockedValue { $0 = nil }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Nothing more is answered: a reply already on its way to this loop (queued before the
        // handler is removed, which SwiftNIO does a task later) joined its parts and charged
        // them to the budget for a response never written, and never gave them back.
        answered = true
        replyTimeout?.cancel()
        replyTimeout = nil
        dropReplyParts()
        waiting = nil
        if let stream { services.directory.detach(stream, for: stream.client) }
        stream = nil
        context.fireChannelInactive()
    }

    /// A caller that shut down its side after its request (`allowRemoteHalfClosure`) gets the
    /// answer, then the connection closes; with nothing to answer it closes now. A stream's
    /// reader that closes its end is gone: the stream ends, and the id's pushes wait for it
    /// (kept open, the stream held the id and its place for ever, and wrote the next push into
    /// the dead connection).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else { return context.fireUserInboundEventTriggered(event) }
        inputClosed = true
        keepAlive = false
        if stream != nil || (answered && waiting == nil) { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("IPC connection error", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        // The answer given last ends the connection (its request said `Connection: close`, or
        // it is an events stream): a request pipelined behind it is not run (RFC 9112 §9.6).
        // It was, once that answer's end was written, and its own answer was lost to the close.
        guard keepAlive else { return }
        // A caller that does not read its responses gets no more of them until it does: each
        // would wait in memory (one such caller's 200 pipelined echoes of 1 MB held 191 MB).
        // Meanwhile the pipelining handler reads nothing more.
        guard context.channel.isWritable else {
            waiting = request
            return
        }
        handle(request, context: context)
    }

    private func handle(_ request: NIOHTTPServerRequestFull, context: ChannelHandlerContext) {
        serial += 1
        answered = false
        dropReplyParts()
        keepAlive = request.head.isKeepAlive && !inputClosed
        // IPCKeyGate has checked the key on the head. Checked again now the body is in: a key
        // changed meanwhile (the body may take ipcBodyTimeoutSeconds) let a request made with
        // the old one run after the change had returned.
        let target = IPCTarget(uri: request.head.uri)
        guard let key = IPCKeyGate.presentedKey(request.head.headers, queryKey: target.key), services.control.sharedKey.matches(key) else {
            services.registry.metrics.ipcKeyRefused()
            keepAlive = false
            return fail(.forbidden, .forbidden("the shared key changed while this request came: send it again with the new key"), counted: false)
        }
        guard request.head.method == .GET || request.head.method == .POST else {
            // RFC 9110 §15.5.6: a 405 lists the methods that are allowed.
            return fail(.methodNotAllowed, .badRequest("use GET or POST"), headers: ["allow": "GET, POST"])
        }
        let path = "/" + target.route
        if let resource = services.resources[path] {
            return respond(.ok, headers: ["content-type": resource.contentType], body: resource.body)
        }
        switch target.route {
        case "metrics": serveMetrics()
        case ControlRoutes.events: openStream(target.headers, body: request.body, version: request.head.version)
        case let route where route.hasPrefix(ControlRoutes.prefix):
            control(route, headers: target.headers, body: request.body, caller: .ipc(key: IPCKeyGate.presentedKey(request.head.headers, queryKey: target.key) ?? ""))
        case "": fail(.notFound, .notFound("name a route: /<route>?<headers>"))
        default: invoke(target, body: request.body ?? ByteBuffer(), eventLoop: context.eventLoop)
        }
    }

    // MARK: Routes

    private func serveMetrics() {
        guard let exposition = services.metricsExposition else {
            return fail(.notFound, .notFound("this host exports no metrics"))
        }
        services.directory.budget.publishUsage()
        respond(.ok, headers: ["content-type": "text/plain; version=0.0.4; charset=utf-8"], body: ByteBuffer(bytes: exposition()))
    }

    /// Only the calls that change the host count against the bound on calls held in its queue:
    /// status, the key and diagnostics, answered at once, were refused while changes queued,
    /// when what the host is doing matters most.
    private func control(_ route: String, headers: Headers, body: ByteBuffer?, caller: ControlCaller) {
        let counted = ControlRoutes.changesTheHost(route)
        guard !counted || services.controlCalls.enter() else {
            return fail(.serviceUnavailable, .unavailable("\(ControlCallCount.limit) control calls are running or waiting; try again once they are done"))
        }
        let answer = answerer(charging: true)
        let (control, metrics) = (services.control, services.registry.metrics)
        Task { [calls = services.controlCalls] in
            defer { if counted { calls.leave() } }
            let result = await ControlRoutes.answer(route, headers: headers, body: body, caller: caller, control: control)
            if case .failure(let error) = result { metrics.errorReplied(type: error.kind.name) }
            answer(ReplyBuilder.message(for: result, route: nil, correlation: nil), "application/json")
        }
    }

    private func invoke(_ target: IPCTarget, body: ByteBuffer, eventLoop: any EventLoop) {
        var headers = target.headers
        headers.replaceOrAppend(HeaderName.route, target.route)
        // The query becomes a Conduit message's headers: it must fit SPEC §1's limits.
        do {
            try Message(headers: headers).validateHeaderLimits()
        } catch {
            return fail(.badRequest, .badRequest("the query can't be a Conduit message's headers: \(error.message)"))
        }
        // A part of a split message waits for the rest on a socket; over IPC the body is whole,
        // and a handler that answered in kind (echo) left the response waiting for its end.
        guard !headers.hasMore else {
            return fail(.badRequest, .badRequest("'more=true' marks a part of a split message; an IPC request's body is its whole payload"))
        }
        guard let client = ClientID(headers["id"] ?? "ipc") else {
            return fail(.badRequest, .badRequest("'id' must be a uint64 or 1–64 of [A-Za-z0-9._-]"))
        }
        // State a handler makes for this id (a UDP socket) ends with the id's grace period.
        guard services.directory.touch(client, cancellations: cancellations) else { return failForNoPlace(client) }
        let answer = answerer()
        cancellable.withLockedValue { $0 = headers.correlation.map { ($0.value, answer) } }
        replyTimeout = eventLoop.assumeIsolated().scheduleTask(in: services.replyTimeout) { [self] in
            // Not cancelled: a handler may go on for the id (an AI stream's tokens are pushes).
            // Nor is a caller that shuts down its side: it may still read its answer.
            fail(.gatewayTimeout, .timeout("the handler did not reply within \(Double(services.replyTimeout.nanoseconds) / 1e9) s"))
        }
        RouteInvocation.invoke(
            route: target.route, headers: headers, payload: body, requestBytes: body.readableBytes,
            client: client, transport: .ipc, eventLoop: eventLoop, registry: services.registry,
            limits: .init(inFlight: .ipcRequest(budget: services.directory.budget), timeout: .nanoseconds(services.replyTimeout.nanoseconds)),
            destination: IPCReplyDestination(answer: answer), cancellations: cancellations)
    }

    /// A new id the host has no place for: every id it holds is connected.
    private func failForNoPlace(_ client: ClientID) {
        fail(.serviceUnavailable, .unavailable(services.directory.noPlaceReason(for: client)))
    }

    /// A function that answers the current request from any thread, once; later calls (a
    /// handler replying twice, a reply after the timeout) are ignored.
    /// `charging`: the answer is the host's own (a control route's), whose size the caller
    /// chooses (`diagnostics?clients=N`): past `unchargedAnswerBytes` it takes its bytes from
    /// the budget until written, or is refused.
    private func answerer(charging: Bool = false) -> @Sendable (Message, String) -> Void {
        let current = serial
        let handler = NIOLoopBound(self, eventLoop: context!.eventLoop)
        let eventLoop = context!.eventLoop
        return { message, contentType in
            eventLoop.execute {
                guard current == handler.value.serial, !handler.value.answered else { return }
                guard !charging || handler.value.charge(message.payload.readableBytes) else { return }
                handler.value.respond(message, contentType: contentType)
            }
        }
    }

    /// A control answer this size or smaller is not charged: a listing of the default 1,000
    /// ids (about 175 KB) is answered even when the budget is full, when the status page is
    /// most wanted; what such answers hold is bounded by `limits.ipcMaxConnections`.
    static let unchargedAnswerBytes = 256 * 1024

    /// Takes a control answer's bytes from the budget (given back once written), or answers
    /// 503 instead: 256 unread `diagnostics?clients=65536` answers held about 4 GB outside it.
    private func charge(_ bytes: Int) -> Bool {
        guard bytes > Self.unchargedAnswerBytes else { return true }
        let budget = services.directory.budget
        guard replyReservation.match(bytes, in: budget, share: .whole) else {
            budget.dropped(.hostBudget)
            fail(.serviceUnavailable, .unavailable("the host's buffer budget can't hold this answer (\(bytes) bytes): ask for less (fewer ids with clients=N, or one with id=)"))
            return false
        }
        return true
    }

    // MARK: Fallback stream

    private func openStream(_ headers: Headers, body: ByteBuffer?, version: HTTPVersion) {
        // A body would keep its charge on the host's budget for the stream's whole life (it is
        // let go with the response's end), which never comes: eight 16 MiB bodies held the
        // incoming half of the default budget, and every other client's messages were refused.
        guard (body?.readableBytes ?? 0) == 0 else {
            return fail(.badRequest, .badRequest("the events stream takes no request body"))
        }
        guard let id = headers["id"], let client = ClientID(id) else {
            return fail(.badRequest, .badRequest("give the client id: /internal.conduit.events?id=<client-id>"))
        }
        let resume: ResumeRequest?
        switch ResumeRequest.parse({ headers[$0] }) {
        case .failure(let problem): return fail(.badRequest, .badRequest(problem.message))
        case .success(let request): resume = request
        }
        // From here the connection ends with its answer: the stream's end, or a refusal (one
        // counted as a stream stays counted until it closes).
        keepAlive = false
        guard startStream() else {
            return fail(.serviceUnavailable, .unavailable("the IPC listener holds as many events streams as it allows (7/8 of limits.ipcMaxConnections, the rest kept for requests); try again later"))
        }
        let stream = FallbackStream(client: client, handler: self, eventLoop: context!.eventLoop)
        let greeting: ResumeState.Greeting?
        switch services.directory.attach(stream, for: client, resume: resume) {
        case .attached(let resumed): greeting = resumed
        case .refused: return fail(.conflict, .unavailable("client '\(client)' has an open socket; its pushes go there"))
        case .noPlace: return failForNoPlace(client)
        }
        self.stream = stream
        answered = true
        // The connection closes when the stream ends: said up front, so no client pools it.
        // In the request's version: an HTTP/1.0 caller can't read chunked framing (RFC 9112
        // §6.1), and gets the frames as they are, the stream ending with the connection.
        let head = HTTPResponseHead(version: version.minor >= 1 ? .http1_1 : .http1_0, status: .ok, headers: [
            "content-type": "application/octet-stream", "cache-control": "no-store", "connection": "close",
        ])
        context?.write(wrapOutboundOut(.head(head)), promise: nil)
        if let greeting {
            writeToStream(greeting.message)
            streamReplay = greeting.replay
        }
        context?.flush()
        pumpStream()
    }

    /// Writes resume's replay, then buffered pushes, each as a uint32 BE length and an encoded
    /// message, while the connection can take more; the rest stay in the window or the
    /// directory for later (or for a socket). Pushes are numbered as they are taken: after the
    /// replay. Written in one go, the replay went into the channel whole, read or not.
    func pumpStream() {
        guard let context, let stream else { return }
        var wrote = false
        while context.channel.isWritable, var replay = streamReplay {
            // Never cut inside a message: the stream's reader acknowledges nothing while it
            // is the id's writer (whatever could, a socket or another stream, takes the id over).
            guard let batch = replay.nextBatch() else {
                streamReplay = nil
                break
            }
            streamReplay = replay
            for message in batch where writeToStream(message) { wrote = true }
        }
        while streamReplay == nil, context.channel.isWritable, let taken = services.directory.takeNext(for: stream.client, stream: stream) {
            // The push's bytes go back to the budget once the channel has written its last part.
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { [budget = services.directory.budget] _ in budget.release(taken.bytes) }
            for (index, part) in taken.parts.enumerated() where writeToStream(part, promise: index == taken.parts.count - 1 ? written : nil) { wrote = true }
        }
        if wrote { context.flush() }
    }

    /// Writes one message to the stream as a uint32 BE length and the encoded message;
    /// `promise` is completed (failed when it can't be) as for the write.
    @discardableResult
    private func writeToStream(_ message: Message, promise: EventLoopPromise<Void>? = nil) -> Bool {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return false
        }
        var buffer = context.channel.allocator.buffer(capacity: 4 + message.encodedSize)
        buffer.writeInteger(UInt32(message.encodedSize))
        do {
            try message.encode(into: &buffer)
        } catch {
            logger.error("push can't be encoded", metadata: ["error": "\(error)", "client.id": "\(stream?.client.rawValue ?? "")"])
            promise?.fail(error)
            return false
        }
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: promise)
        return true
    }

    /// A socket or another stream took over the id: the response ends.
    func endStream() {
        guard let context, stream != nil else { return }
        stream = nil
        streamReplay = nil
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let request = waiting.take() { handle(request, context: context) }
        pumpStream()
        context.fireChannelWritabilityChanged()
    }

    // MARK: Responses

    /// Counted as the socket's own errors are (`conduit_errors_total`): a 504, or a request
    /// refused before any handler saw it, was not. A refusal for the key is not (`counted`):
    /// it has a count of its own.
    private func fail(_ status: HTTPResponseStatus, _ error: ConduitError, headers: HTTPHeaders = [:], counted: Bool = true) {
        if counted { services.registry.metrics.errorReplied(type: error.kind.name) }
        var headers = headers
        headers.add(name: "content-type", value: "application/json")
        respond(status, headers: headers, body: error.payload)
    }

    /// A reply message as a response: its headers as response headers, its payload as the body,
    /// an `error` header as the matching status. Parts with `more=true` are joined first; an
    /// error after parts is the answer alone, as over the socket (joined in front of its JSON,
    /// no caller could read it).
    private func respond(_ message: Message, contentType: String) {
        guard !answered else { return }
        if message.headers.hasMore { return join(message.payload) }
        var message = message
        let error = message.headers[HeaderName.error]
        if error != nil { dropReplyParts() }
        // Taken, so the last part is appended without copying the others (their charge stays
        // until the response is written).
        if var joined = replyParts.take() {
            joined.writeBuffer(&message.payload)
            message.payload = joined
        }
        let status = error.map(HTTPResponseStatus.init(conduitErrorType:)) ?? .ok
        var headers: HTTPHeaders = ["content-type": contentType]
        for (name, value) in message.headers where Self.isHTTPSafe(name: name, value: value) {
            headers.add(name: name, value: value)
        }
        respond(status, headers: headers, body: message.payload)
    }

    /// Adds a part of a reply to the ones before it; a reply the budget can't hold (a handler
    /// sending parts without end) is answered 503 instead, its later parts ignored.
    private func join(_ part: ByteBuffer) {
        var part = part
        if replyParts == nil { replyParts = context?.channel.allocator.buffer(capacity: part.readableBytes * 2) }
        replyParts?.writeBuffer(&part)
        let budget = services.directory.budget
        guard replyReservation.match(replyParts?.capacity ?? 0, in: budget, share: .whole) else {
            budget.dropped(.hostBudget)
            return fail(.serviceUnavailable, .unavailable("the host's buffer budget is full: the reply's parts can't be joined"))
        }
    }

    private func dropReplyParts() {
        replyParts = nil
        replyReservation.releaseAll(in: services.directory.budget)
    }

    private func respond(_ status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer) {
        guard let context, !answered else { return }
        answered = true
        // Read before writing: writing the end hands this handler the next pipelined request,
        // whose own `Connection: close` closed the connection before it was answered.
        let keepAlive = keepAlive
        // So is the joined reply's charge, handed to the end's write for the same reason.
        let done = context.eventLoop.makePromise(of: Void.self)
        replyParts = nil
        replyReservation.release(in: services.directory.budget, when: done.futureResult)
        replyTimeout?.cancel()
        replyTimeout = nil
        var headers = headers
        headers.replaceOrAdd(name: "content-length", value: "\(body.readableBytes)")
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive { done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    /// Header names must be HTTP tokens and values free of control characters, and the
    /// response's own framing headers are the listener's; a Conduit header that breaks these
    /// rules is left out of the response (its payload is unaffected).
    private static func isHTTPSafe(name: String, value: String) -> Bool {
        !name.isEmpty
            && !framingHeaders.contains(name.lowercased())
            && name.utf8.allSatisfy { tokenBytes.contains($0) }
            && value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    private static let framingHeaders: Set<String> = ["content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "upgrade"]

    private static let tokenBytes = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
}

/// Hands an IPC request's reply to the HTTP response (JSON for errors).
private struct IPCReplyDestination: ReplyDestination {
    let answer: @Sendable (Message, String) -> Void

    func deliver(_ result: Result<Reply, ConduitError>, to request: ReplyAddress) {
        let reply = ReplyBuilder.message(for: result, to: request)
        answer(reply, reply.headers[HeaderName.error] == nil ? "application/octet-stream" : "application/json")
    }
}
