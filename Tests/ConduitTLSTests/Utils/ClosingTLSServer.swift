import ConduitTLS
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// A TLS server outside the host that, right after the handshake, either says `farewell` to
/// each client and closes the connection, cleanly (with a TLS close_notify) or by cutting the
/// TCP connection under TLS (the far side of `tls.end`), or, with `farewell` nil, stops reading
/// (a server that takes no more of what the bridge writes).
final class ClosingTLSServer: Sendable {
    let certificate: SelfSignedCertificate
    private let listener: any Channel

    var port: Int { listener.localAddress!.port! }

    init(farewell: String?, clean: Bool = true) async throws {
        let certificate = try SelfSignedCertificate()
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificate.certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(certificate.privateKeyPEM.utf8), format: .pem))
        ))
        self.certificate = certificate
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let socketEnd = SocketEnd()
                    try channel.pipeline.syncOperations.addHandlers(socketEnd, NIOSSLServerHandler(context: context))
                    guard let farewell else { return try channel.pipeline.syncOperations.addHandler(StopReading()) }
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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { context.channel.setOption(.autoRead, value: false).whenComplete { _ in } }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The first handler: a close from its context reaches the socket without passing TLS.
private final class SocketEnd: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
}
