import ConduitTLS
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// A TLS server outside the host that says `farewell` to each client right after the
/// handshake and closes the connection (with a close_notify): the far side of `tls.end`.
final class ClosingTLSServer: Sendable {
    let certificate: SelfSignedCertificate
    private let listener: any Channel

    var port: Int { listener.localAddress!.port! }

    init(farewell: String) async throws {
        let certificate = try SelfSignedCertificate()
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificate.certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(certificate.privateKeyPEM.utf8), format: .pem))
        ))
        self.certificate = certificate
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(NIOSSLServerHandler(context: context), SayAndClose(farewell))
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

    init(_ farewell: String) { self.farewell = farewell }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: farewell)), promise: nil)
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// A port nothing listens on: bound once, then closed.
func closedPort() async throws -> Int {
    let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0)
        .get()
    let port = listener.localAddress!.port!
    try await listener.close()
    return port
}
