import ConduitKit
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The IPC listener (SPEC §6): HTTP/1.1 on its own port, up for the whole life of the host,
/// whatever the socket server does.
struct IPCListener: Sendable {
    let services: IPCDependencies
    let group: any EventLoopGroup
    let logger: Logger
    /// Open connections, bounded, so that shutdown ends them too (an event stream never ends
    /// by itself). Those that have not shown the key make room for new ones: a process without
    /// it could otherwise hold every place and lock the keyed callers out. An eighth of the
    /// places are kept from events streams: paused, every resuming client reads over IPC, and
    /// 256 of them took every place, `conduit resume` (start) included.
    private let connections: OpenChannels
    /// A descriptor kept for the control plane when sockets take all the others.
    private let reserve = DescriptorReserve()

    init(services: IPCDependencies, group: any EventLoopGroup, logger: Logger) {
        self.services = services
        self.group = group
        self.logger = logger
        let places = services.limits.maxConnections
        connections = OpenChannels(limit: places, makingRoomFromUnproven: true, streamLimit: max(1, places - (places + 7) / 8))
    }

    /// Closes the listening channel and every connection.
    func close(_ server: any Channel) async {
        try? await server.close()
        await connections.closeAll()
    }

    func bind(host: String, port: Int) async throws -> any Channel {
        try await ListenFailure.naming("IPC requests", host: host, port: port) {
            try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                // Out of descriptors: the one in reserve is let go for the next connection, else a
                // pause between accepts, not a spinning loop.
                .serverChannelInitializer { [reserve] server in
                    server.eventLoop.makeCompletedFuture { try server.pipeline.syncOperations.addHandler(AcceptPause(freeDescriptor: reserve.release)) }
                }
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                // A caller that shuts down its side after its request still reads the answer:
                // SwiftNIO's pipelining handler closes once the answer in progress has gone.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { [services, logger, connections, reserve] channel in
                    // The connection may hold the reserve's descriptor: kept again once it closes.
                    channel.closeFuture.whenComplete { _ in reserve.restore() }
                    guard connections.admit(channel) else {
                        logger.debug("IPC connection refused: too many open", metadata: ["ipc.connections": "\(connections.limit)"])
                        return channel.close()
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandlers(
                            IPCDeadlines(idle: services.limits.idleTimeout, body: services.limits.bodyTimeout),
                            IPCKeyGate(
                                sharedKey: services.control.sharedKey, proven: { connections.prove(channel) },
                                refused: { services.registry.metrics.ipcKeyRefused() }),
                            IPCBodyLimit(maxBodyBytes: services.maxBodyBytes, metrics: services.registry.metrics),
                            IPCExpectContinue(),
                            IPCBodyBudget(budget: services.directory.budget, metrics: services.registry.metrics),
                            NIOHTTPServerRequestAggregator(maxContentLength: services.maxBodyBytes),
                            IPCRequestHandler(services: services, logger: logger) { connections.startStream(channel) }
                        )
                    }
                }
                .bind(host: host, port: port)
                .get()
        }
    }
}
