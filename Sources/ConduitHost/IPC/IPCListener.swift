import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The IPC listener (SPEC §6): HTTP/1.1 on its own port, up for the whole life of the host,
/// whatever the socket server does.
struct IPCListener: Sendable {
    let services: IPCServices
    let group: any EventLoopGroup
    let logger: Logger

    func bind(host: String, port: Int) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [services, logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOHTTPServerRequestAggregator(maxContentLength: services.maxBodyBytes),
                        IPCRequestHandler(services: services, logger: logger)
                    )
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
