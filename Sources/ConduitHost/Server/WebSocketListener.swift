import ConduitKit
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The Conduit socket server: binds, upgrades HTTP to WebSocket on NIO's own codec, and
/// gives each socket a `SessionHandler`. It can be stopped and started again (pause/resume).
final class WebSocketListener: Sendable {
    /// TCP keepalive on every socket: a peer gone without a FIN or a RST (a laptop that slept,
    /// a network that dropped) is found within about two minutes (60 s idle, then 6 probes 10 s
    /// apart) and its socket closed, so its id goes on to its grace period. Without it such a
    /// socket stayed "connected" for as long as nothing was sent (the kernel's own default
    /// waits two hours), holding its id, its streams and its queue.
    private static let keepAliveIdle = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: TCP_KEEPIDLE))
    private static let keepAliveInterval = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: TCP_KEEPINTVL))
    private static let keepAliveProbes = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: TCP_KEEPCNT))

    private let services: SessionDependencies
    private let group: any EventLoopGroup
    private let logger: Logger
    private let policy: HandshakePolicy
    /// Connections whose handshake is not done: a pause closes them.
    let pending: PendingHandshakes
    private let arrivals = ArrivalOrder()

    init(services: SessionDependencies, pending: PendingHandshakes, group: any EventLoopGroup, logger: Logger) {
        self.services = services
        self.group = group
        self.logger = logger
        self.policy = HandshakePolicy(mode: services.mode, sharedKey: services.sharedKey, allowedOrigins: services.settings.allowedOrigins)
        self.pending = pending
    }

    /// Binds and returns the server channel.
    func bind(host: String, port: Int) async throws -> any Channel {
        try await ListenFailure.naming("WebSocket connections", host: host, port: port) {
            try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { [arrivals] server in
                    server.eventLoop.makeCompletedFuture {
                        // Out of descriptors: a pause between accepts, not a spinning loop.
                        try server.pipeline.syncOperations.addHandlers(AcceptPause(), ArrivalOrder.Stamp(arrivals))
                    }
                }
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(.socketOption(.so_keepalive), value: 1)
                .childChannelOption(Self.keepAliveIdle, value: 60)
                .childChannelOption(Self.keepAliveInterval, value: 10)
                .childChannelOption(Self.keepAliveProbes, value: 6)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture { try self.configure(channel) }
                }
                .bind(host: host, port: port)
                .get()
        }
    }

    private func configure(_ channel: any Channel) throws {
        let arrival = arrivals.take(channel)
        // First, so it gives the connection's place back however the rest goes.
        try channel.pipeline.syncOperations.addHandler(pending.admit(channel), name: PendingHandshakes.Guard.name)
        let accepted = NIOLoopBoundBox<HandshakePolicy.Accepted?>(nil, eventLoop: channel.eventLoop)
        // A handshake the policy accepts may still find no place for a new id.
        let refusal = NIOLoopBoundBox<HandshakePolicy.Rejected?>(nil, eventLoop: channel.eventLoop)
        let attached = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
        let timeout = channel.eventLoop.assumeIsolated().scheduleTask(
            in: .fractionalSeconds(services.settings.handshakeTimeoutSeconds)
        ) { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in timeout.cancel() }

        let handshake = NIOWebSocketServerUpgrader(
            shouldUpgrade: { [policy, services] channel, head in
                switch policy.evaluate(head) {
                case .success(let result):
                    // The id is registered before its 101 is written: a client told of the
                    // connection at once can relay to it (SPEC §2).
                    if services.mode == .conduit {
                        guard services.directory.handshakeAccepted(result.client) else {
                            refusal.value = .init(status: .serviceUnavailable, reason: services.directory.noPlaceReason(for: result.client), refusal: .noPlace)
                            return channel.eventLoop.makeSucceededFuture(nil)
                        }
                        channel.closeFuture.whenComplete { _ in
                            if !attached.value { services.directory.handshakeAbandoned(result.client) }
                        }
                    }
                    accepted.value = result
                    var headers = HTTPHeaders()
                    if let subprotocol = result.subprotocol { headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
                    return channel.eventLoop.makeSucceededFuture(headers)
                case .failure:
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
            },
            // Unused: `WebSocketUpgrader` installs the frame handler itself.
            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }
        )
        let upgrader = WebSocketUpgrader(handshake: handshake) { [services, logger] channel in
            timeout.cancel()
            guard let result = accepted.value else { throw ChannelError.inappropriateOperationForState }
            channel.pipeline.syncOperations.removeHandler(name: HandshakeRejectionHandler.name, promise: nil)
            channel.pipeline.syncOperations.removeHandler(name: PendingHandshakes.Guard.name, promise: nil)
            if services.mode == .conformanceEcho {
                try channel.pipeline.syncOperations.addHandler(ConformanceEchoHandler(maxMessageBytes: services.settings.maxMessageBytes))
            } else {
                try channel.pipeline.syncOperations.addHandler(
                    SessionHandler(
                        client: result.client, window: result.window, resume: result.resume, arrival: arrival, services: services, logger: logger))
            }
            attached.value = true
        }
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false,
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
            withErrorHandling: true
        )
        try channel.pipeline.syncOperations.addHandler(HandshakeRejectionHandler(policy: policy, refusal: refusal, metrics: services.metrics), name: HandshakeRejectionHandler.name)
        let upgrading = try channel.pipeline.syncOperations.context(handlerType: HTTPServerUpgradeHandler.self)
        try channel.pipeline.syncOperations.addHandler(UpgradeTokenLimit(metrics: services.metrics), position: .before(upgrading.handler))
    }
}

extension Logger {
    func with(metadata: Logger.Metadata) -> Logger {
        var copy = self
        for (key, value) in metadata { copy[metadataKey: key] = value }
        return copy
    }
}
