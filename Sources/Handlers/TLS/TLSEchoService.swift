import ConduitKit
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A local TLS server that sends back every byte it receives, so the `tls.*` bridge can be
/// shown and tested without anything outside the host. Its certificate is generated at start
/// (self-signed) unless the options name PEM files; `tls.echoService` tells clients the port
/// and the certificate to trust.
final class TLSEchoService: Sendable {
    /// The `tls.echoService` reply.
    struct Info: Encodable, Sendable {
        let host: String
        let port: Int
        /// The certificate to trust (the payload of a verified `tls.connect` to the service).
        let certificatePEM: String
        /// Connections open now.
        let connections: Int
    }

    let host: String
    let port: Int
    private let certificatePEM: String
    private let listener: any Channel
    private let connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>

    private init(certificatePEM: String, listener: any Channel, connections: NIOLockedValueBox<[ObjectIdentifier: any Channel]>) {
        host = listener.localAddress?.ipAddress ?? "127.0.0.1"
        port = listener.localAddress?.port ?? 0
        self.certificatePEM = certificatePEM
        self.listener = listener
        self.connections = connections
    }

    var info: Info {
        Info(host: host, port: port, certificatePEM: certificatePEM, connections: connections.withLockedValue { $0.count })
    }

    static func start(_ options: TLSOptions.EchoService, group: any EventLoopGroup) async throws -> TLSEchoService {
        let (certificatePEM, privateKey) = try identity(options)
        let server = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(privateKey)
        )
        let context = try NIOSSLContext(configuration: server)
        let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let id = ObjectIdentifier(channel)
                connections.withLockedValue { $0[id] = channel }
                channel.closeFuture.whenComplete { _ in connections.withLockedValue { $0[id] = nil } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOSSLServerHandler(context: context), BackPressureHandler(), EchoBack())
                }
            }
            .bind(host: options.host, port: options.port)
            .get()
        return TLSEchoService(certificatePEM: certificatePEM, listener: listener, connections: connections)
    }

    /// Stops listening and closes every connection (with a TLS close_notify).
    func stop() async {
        try? await listener.close()
        for closing in connections.withLockedValue({ $0.values.map { $0.close() } }) {
            try? await closing.get()
        }
    }

    /// The certificate (PEM) and key the service presents.
    private static func identity(_ options: TLSOptions.EchoService) throws -> (String, NIOSSLPrivateKey) {
        if let certificateFile = options.certificateFile, let privateKeyFile = options.privateKeyFile {
            let certificatePEM = String(decoding: try TLSTrust.contents(of: certificateFile), as: UTF8.self)
            return (certificatePEM, try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        }
        let generated = try SelfSignedCertificate()
        return (generated.certificatePEM, try NIOSSLPrivateKey(bytes: Array(generated.privateKeyPEM.utf8), format: .pem))
    }
}

/// Writes back what it reads, flushing once per read burst; `BackPressureHandler` before it
/// stops reading while the peer does not read the echo.
private final class EchoBack: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
