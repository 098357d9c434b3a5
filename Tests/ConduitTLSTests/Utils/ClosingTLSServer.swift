import ConduitTLS
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// A TLS server outside the host that, right after the handshake, either says `farewell` to
/// each client and closes the connection, cleanly (with a TLS close_notify) or by cutting the
/// TCP connection under TLS (the far side of `tls.end`), or, with `farewell` nil, stops reading
/// (a server that takes no more of what the bridge writes), or reads for 100 ms every
/// `readingEvery` (a slow server, whose pace is its pauses', not the machine's).
final class ClosingTLSServer: Sendable {
    let certificate: SelfSignedCertificate
    private let listener: any Channel

    var port: Int { listener.localAddress!.port! }

    init(farewell: String?, clean: Bool = true, readingEvery: TimeAmount? = nil) async throws {
        let certificate = try SelfSignedCertificate()
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificate.certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(certificate.privateKeyPEM.utf8), format: .pem))
        ))
        self.certificate = certificate
        var bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if readingEvery != nil {
            // A small window: what the server takes is its reads' pace alone.
            bootstrap = bootstrap.childChannelOption(.socketOption(.so_rcvbuf), value: 16 << 10)
        }
        listener = try await bootstrap
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let socketEnd = SocketEnd()
                    try channel.pipeline.syncOperations.addHandlers(socketEnd, NIOSSLServerHandler(context: context))
                    guard let farewell else { return try channel.pipeline.syncOperations.addHandler(StopReading(readingEvery: readingEvery)) }
                    try channel.pipeline.syncOperations.addHandler(SayAndClose(farewell, cut: clean ? nil : socketEnd))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    func close() async throws { try await listener.close() }
}

private final class SayAndClose: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let farewell: String
    private let cut: SocketEnd?

    /// - Parameter cut: closes here, under TLS, when given.
    init(_ farewell: String, cut: SocketEnd?) {
        self.farewell = farewell
        self.cut = cut
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            let written = context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: farewell)))
            if let cut, let below = try? context.pipeline.syncOperations.context(handler: cut) {
                let socket = NIOLoopBound(below, eventLoop: context.eventLoop)
                written.whenComplete { _ in socket.value.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

private final class StopReading: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let readingEvery: TimeAmount?

    init(readingEvery: TimeAmount?) {
        self.readingEvery = readingEvery
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
            if let readingEvery { readForAWhile(context: context, every: readingEvery) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func readForAWhile(context: ChannelHandlerContext, every interval: TimeAmount) {
        guard context.channel.isActive else { return }
        let loop = context.eventLoop.assumeIsolated()
        loop.scheduleTask(in: interval) {
            context.channel.setOption(.autoRead, value: true).whenComplete { _ in }
            context.read()
            loop.scheduleTask(in: .milliseconds(100)) {
                context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
                self.readForAWhile(context: context, every: interval)
            }
        }
    }
}

/// The first handler: a close from its context reaches the socket without passing TLS.
private final class SocketEnd: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
}
