import ConduitKit
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SwiftASN1
import Synchronization
import X509

/// A local TLS server that sends back every byte it receives, so the `tls.*` bridge can be
/// shown and tested without anything outside the host. Its certificate is generated at start
/// (self-signed) unless the options name PEM files; `tls.echoService` tells clients the port
/// and the certificate to trust. Anyone on the machine may connect without the key, so its
/// connections are bounded (`maxConnections`: past it a new one is closed at once) and must
/// complete their handshake in time: 19,950 connections that did nothing held 19,970 of the
/// host's 20,000 descriptors and 422 MB.
final class TLSEchoService: Sendable {
    /// The `tls.echoService` reply.
    struct Info: Encodable, Sendable {
        let host: String
        let port: Int
        /// The certificate to trust (the payload of a verified `tls.connect` to the service).
        let certificatePEM: String
        /// Connections open now.
        let connections: Int
        /// Connections closed at once: `maxConnections` were open.
        let refused: Int
    }

    let host: String
    let port: Int
    private let certificatePEM: String
    private let listener: any Channel
    private let connections: OpenChannels
    /// The host and port asked for (`SharedListeningPort`), let go once at the first stop.
    private let boundAs: (host: String, port: Int)
    private let stopped = Atomic(false)

    private init(certificatePEM: String, listener: any Channel, connections: OpenChannels, boundAs: (host: String, port: Int)) {
        host = listener.localAddress?.ipAddress ?? "127.0.0.1"
        port = listener.localAddress?.port ?? 0
        self.certificatePEM = certificatePEM
        self.listener = listener
        self.connections = connections
        self.boundAs = boundAs
    }

    var info: Info {
        Info(host: host, port: port, certificatePEM: certificatePEM, connections: connections.count, refused: connections.refused)
    }

    /// `route`: the route it serves, which alone may share its fixed port (`SharedListeningPort`).
    /// `configured`: the identity of the options' files (`configuredIdentity`); nil makes one.
    static func start(
        _ options: TLSOptions.EchoService, configured: Identity?, route: String, group: any EventLoopGroup
    ) async throws -> TLSEchoService {
        let identity = try configured ?? generatedIdentity()
        let server = TLSConfiguration.makeServerConfiguration(
            certificateChain: identity.chain.map { .certificate($0) }, privateKey: .privateKey(identity.privateKey))
        let context = try NIOSSLContext(configuration: server)
        let connections = OpenChannels(limit: options.maxConnections)
        let handshakeTimeout = TimeAmount.fractionalSeconds(options.handshakeTimeoutSeconds)
        try await SharedListeningPort.checkFree(host: options.host, port: options.port, route: route, group: group)
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(SharedListeningPort.option, value: 1)
            // Out of descriptors: a pause between accepts, not a spinning loop.
            .serverChannelInitializer { server in
                server.eventLoop.makeCompletedFuture { try server.pipeline.syncOperations.addHandler(AcceptPause()) }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard connections.admit(channel) else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOSSLServerHandler(context: context), HandshakeDeadline(handshakeTimeout), BackPressureHandler(), EchoBack())
                }
            }
            .bind(host: options.host, port: options.port)
            .get()
        SharedListeningPort.hold(host: options.host, port: options.port, route: route)
        return TLSEchoService(certificatePEM: identity.certificatePEM, listener: listener, connections: connections, boundAs: (options.host, options.port))
    }

    /// Stops listening and closes every connection (with a TLS close_notify).
    func stop() async {
        try? await listener.close()
        if !stopped.exchange(true, ordering: .relaxed) { SharedListeningPort.release(host: boundAs.host, port: boundAs.port) }
        await connections.closeAll()
    }

    /// The certificate (PEM) and key the service presents.
    typealias Identity = (certificatePEM: String, chain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey)

    /// The identity the options' files hold, nil when they name none; read when the route is
    /// made, so `conduit check` and a reload refuse a file that can't be used (read at start,
    /// a configuration `check` called ok failed to serve).
    static func configuredIdentity(_ options: TLSOptions.EchoService) throws -> Identity? {
        guard options.enabled, let certificateFile = options.certificateFile, let privateKeyFile = options.privateKeyFile else { return nil }
        let pem = try TLSTrust.contents(of: certificateFile)
        let chain = try TLSTrust.certificates(inPEM: pem, from: "echoService.certificateFile '\(certificateFile)'")
        // The certificates alone, written again: the file may hold the private key too (a
        // common layout), and the `echoService` reply handed it to every caller with the key.
        let certificatesPEM = try chain.map { try Certificate(derEncoded: $0.toDERBytes()).serializeAsPEM().pemString }.joined(separator: "\n")
        do {
            return (certificatesPEM, chain, try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        } catch {
            throw ConduitError.badRequest("echoService.privateKeyFile '\(privateKeyFile)' holds no usable private key: \(error)")
        }
    }

    /// The generated certificate's life: the process's, never renewed (made at start and at a
    /// reload that rebuilds the route). Its key never leaves the host, and it is trusted only by
    /// whom `tls.echoService` hands it: made for 7 days, a host up longer served an expired
    /// certificate, and every verified connect to its own echo service failed.
    static let generatedLifetime: TimeInterval = 10 * 365 * 24 * 3600

    private static func generatedIdentity() throws -> Identity {
        let generated = try SelfSignedCertificate(validFor: generatedLifetime)
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(generated.certificatePEM.utf8))
        return (generated.certificatePEM, chain, try NIOSSLPrivateKey(bytes: Array(generated.privateKeyPEM.utf8), format: .pem))
    }
}

/// Closes the connection unless its TLS handshake completes within the timeout (after the TLS
/// handler in the pipeline, which tells of the handshake with a user event).
private final class HandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(_ timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            timer?.cancel()
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
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
