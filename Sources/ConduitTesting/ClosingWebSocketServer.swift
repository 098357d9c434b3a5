import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A WebSocket server that accepts every upgrade and closes the socket at once (1011): a host
/// that takes a client and drops it straight away, over and over. Counts the upgrades.
public final class ClosingWebSocketServer: Sendable {
    private let channel: any Channel
    private let upgrades: NIOLockedValueBox<Int>

    private init(channel: any Channel, upgrades: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.upgrades = upgrades
    }

    public static func start() async throws -> ClosingWebSocketServer {
        let upgrades = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                    upgradePipelineHandler: { channel, _ in
                        upgrades.withLockedValue { $0 += 1 }
                        var reason = channel.allocator.buffer(capacity: 2)
                        reason.write(webSocketErrorCode: .unexpectedServerError)
                        return channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: reason))
                            .flatMap { channel.close() }
                    })
                return channel.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ClosingWebSocketServer(channel: channel, upgrades: upgrades)
    }

    public var port: Int { channel.localAddress!.port! }

    /// Upgrades accepted so far.
    public var upgraded: Int { upgrades.withLockedValue { $0 } }

    public func stop() async throws {
        try await channel.close()
    }
}
