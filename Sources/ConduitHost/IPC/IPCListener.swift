import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The IPC listener (SPEC §6): HTTP/1.1 on its own port, up for the whole life of the host,
/// whatever the socket server does.
struct IPCListener: Sendable {
    let services: IPCDependencies
    let group: any EventLoopGroup
    let logger: Logger
    /// Open connections, so that shutdown ends them too (an event stream never ends by itself).
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    init(services: IPCDependencies, group: any EventLoopGroup, logger: Logger) {
        self.services = services
        self.group = group
        self.logger = logger
    }

    /// Closes the listening channel and every connection.
    func close(_ server: any Channel) async {
        try? await server.close()
        let open = connections.withLockedValue { Array($0.values) }
        for channel in open { try? await channel.close() }
    }

    func bind(host: String, port: Int) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [services, logger, connections] channel in
                let id = ObjectIdentifier(channel)
                // A bound on open connections: past it a new one is closed at once.
                let admitted = connections.withLockedValue { open in
                    guard open.count < services.limits.maxConnections else { return false }
                    open[id] = channel
                    return true
                }
                guard admitted else {
                    logger.debug("IPC connection refused: too many open", metadata: ["ipc.connections": "\(services.limits.maxConnections)"])
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in _ = connections.withLockedValue { $0.removeValue(forKey: id) } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandlers(
                        IPCDeadlines(idle: services.limits.idleTimeout, body: services.limits.bodyTimeout),
                        IPCKeyGate(sharedKey: services.control.sharedKey),
                        NIOHTTPServerRequestAggregator(maxContentLength: services.maxBodyBytes),
                        IPCRequestHandler(services: services, logger: logger)
                    )
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
