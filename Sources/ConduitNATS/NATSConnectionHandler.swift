import NIOCore
import NIOSSL

/// One connection's protocol: INFO → (TLS) → CONNECT, the subscriptions to restore, PING;
/// the first PONG makes it ready. Then it answers pings, sends its own to notice a dead
/// server, and coalesces writes into one flush per event-loop turn.
final class NATSConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ServerOperation
    typealias OutboundOut = ClientOperation

    private let client: NATSClient
    private let options: NATSClientOptions
    /// The server this connection goes to (its name is checked against a TLS certificate).
    private let server: ServerAddress
    private var context: ChannelHandlerContext?
    private var flushPending = false
    private var phase = Phase.awaitingInfo
    private var pingsOut = 0
    /// PONGs not yet taken by the socket: a server that sends PINGs and reads none of the
    /// answers had them wait in the outbound queue without bound (a few hundred bytes each).
    private var pongsUnwritten = 0
    private static let maxPongsUnwritten = 1024
    private var pinger: RepeatedTask?
    /// What each PING sent since the handshake's waits for (servers answer in order): a
    /// `flush`, or nothing (the keep-alive's).
    private var pongsAwaited = CircularBuffer<EventLoopPromise<Void>?>()

    private enum Phase { case awaitingInfo, awaitingPong, ready }

    init(client: NATSClient, options: NATSClientOptions, server: ServerAddress) {
        self.client = client
        self.options = options
        self.server = server
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        // A connect under way when the client closed goes no further: on a loaded machine one
        // completed after `close` had returned, and sent CONNECT to whatever listened by then.
        guard client.connectionState != .closed else { return context.close(promise: nil) }
        // A server that accepts TCP but never completes the handshake is given up on.
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: TimeAmount(options.connectTimeout)) {
            let handler = loopBound.value
            if handler.phase != .ready { handler.context?.close(promise: nil) }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        pinger?.cancel()
        while let awaited = pongsAwaited.popFirst() { awaited?.fail(NATSError.disconnected) }
        client.connectionLost(context.channel)
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        client.record(error: error)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .info(let info):
            if phase == .awaitingInfo { handshake(info, context: context) } else { client.infoUpdated(info) }
        case .pong:
            pingsOut = 0
            if phase == .awaitingPong {
                phase = .ready
                startPinging(context: context)
                client.connectionReady(context.channel)
            } else {
                pongsAwaited.popFirst()??.succeed()
            }
        case .ping:
            answer(ping: context)
        case .message(let message, let subscription):
            client.received(message, subscription: subscription)
        case .malformed(let subject, let subscription, let error):
            client.receivedMalformed(subject: subject, subscription: subscription, error)
        case .ok:
            break
        case .error(let text):
            client.record(error: NATSError.server(text))
        }
    }

    private func answer(ping context: ChannelHandlerContext) {
        guard pongsUnwritten < Self.maxPongsUnwritten else {
            client.record(error: NATSError.protocolViolation("the server sent \(pongsUnwritten) PINGs whose PONGs it does not read"))
            context.close(promise: nil)
            return
        }
        pongsUnwritten += 1
        let written = context.eventLoop.makePromise(of: Void.self)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in loopBound.value.pongsUnwritten -= 1 }
        send(.pong, promise: written)
    }

    /// Sends `operation`; the flush comes once the current turn of the event loop is over.
    func send(_ operation: ClientOperation, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(wrapOutboundOut(operation), promise: promise)
        guard !flushPending else { return }
        flushPending = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = loopBound.value
            handler.flushPending = false
            handler.context?.flush()
        }
    }

    /// A PING whose PONG completes `promise`: the server has processed everything before it.
    func flush(_ promise: EventLoopPromise<Void>) {
        guard phase == .ready, context != nil else { return promise.fail(NATSError.notConnected) }
        pongsAwaited.append(promise)
        send(.ping)
    }

    private func handshake(_ info: NATSServerInfo, context: ChannelHandlerContext) {
        if options.tls || info.tlsRequired {
            do {
                let tls = try NIOSSLClientHandler(context: client.tlsContext(), serverHostname: server.tlsName(configured: options.host))
                try context.pipeline.syncOperations.addHandler(tls, position: .first)
            } catch {
                client.record(error: error)
                context.close(promise: nil)
                return
            }
        }
        phase = .awaitingPong
        send(.connect(ConnectFields(
            tls_required: options.tls || info.tlsRequired, name: options.name,
            user: options.user, pass: options.password, auth_token: options.token)))
        for operation in client.connectionOpened(context.channel, handler: self, info: info) { send(operation) }
        send(.ping)
    }

    private func startPinging(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let interval = TimeAmount(options.pingInterval)
        pinger = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let handler = loopBound.value
            guard handler.pingsOut < handler.options.maxPingsOut else {
                handler.client.record(error: NATSError.protocolViolation("\(handler.pingsOut) pings without an answer"))
                handler.context?.close(promise: nil)
                return
            }
            handler.pingsOut += 1
            handler.pongsAwaited.append(nil)
            handler.send(.ping)
        }
    }
}
