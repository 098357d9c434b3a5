import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Opens a TCP connection and upgrades it to a WebSocket with NIO's client upgrader. Shared by
/// the product client and the test client (ConduitTesting), which add their own frame handlers.
package enum WebSocketUpgrade {
    /// Connects to `ws://host:port<path>` and resolves once the server switched protocols and
    /// `upgraded` has set up the WebSocket pipeline. When the connection closes before that
    /// (the server refused the upgrade), it throws `refusal`.
    package static func connect(
        host: String, port: Int, path: String, headers: HTTPHeaders = [:], maxFrameSize: Int,
        automaticErrorHandling: Bool, refusal: any Error & Sendable, timeout: TimeAmount = .seconds(10), eventLoop: any EventLoop,
        configure: (ClientBootstrap) -> ClientBootstrap = { $0 },
        upgraded: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel {
        let upgradeDone = eventLoop.makePromise(of: Void.self)
        let connecting = configure(ClientBootstrap(group: eventLoop).connectTimeout(timeout).channelOption(.tcpOption(.tcp_nodelay), value: 1))
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(
                    maxFrameSize: maxFrameSize,
                    automaticErrorHandling: automaticErrorHandling,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            channel.pipeline.syncOperations.removeHandler(name: UpgradeRequester.name, promise: nil)
                            try upgraded(channel)
                            upgradeDone.succeed()
                        }
                    }
                )
                var requestHeaders = headers
                requestHeaders.replaceOrAdd(name: "Host", value: "\(host):\(port)")
                requestHeaders.replaceOrAdd(name: "Content-Length", value: "0")
                let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: requestHeaders)
                return channel.eventLoop.makeCompletedFuture {
                    // Frames the server sends right after its 101 can arrive in the same read as
                    // the response: forward those bytes to the WebSocket decoder, don't drop them.
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                    )
                    // After the upgrade handler, so it adds the upgrade headers to this request.
                    try channel.pipeline.syncOperations.addHandler(UpgradeRequester(head: head), name: UpgradeRequester.name)
                }
            }
            .connect(host: host, port: port)
        let channel: any Channel
        do {
            channel = try await connecting.get()
        } catch {
            upgradeDone.fail(error)
            throw error
        }
        channel.closeFuture.whenComplete { _ in upgradeDone.fail(refusal) }
        // No answer to the upgrade within `timeout` fails the attempt (a no-op once upgraded),
        // and a failed attempt's connection is closed.
        let deadline = eventLoop.scheduleTask(in: timeout) {
            upgradeDone.fail(UpgradeTimedOut(host: host, port: port, timeout: timeout))
        }
        upgradeDone.futureResult.whenFailure { _ in channel.close(promise: nil) }
        defer { deadline.cancel() }
        try await upgradeDone.futureResult.get()
        return channel
    }
}

/// Sends the upgrade request once the connection is up (the client upgrader waits for it).
private final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    static let name = "conduit.upgrade-requester"
    private let head: HTTPRequestHead

    init(head: HTTPRequestHead) {
        self.head = head
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }
}

/// The server took the connection but did not answer the WebSocket upgrade in time.
package struct UpgradeTimedOut: Error, CustomStringConvertible {
    let host: String
    let port: Int
    let timeout: TimeAmount

    package var description: String {
        "no answer to the WebSocket upgrade from \(host):\(port) within \(timeout.nanoseconds / 1_000_000) ms"
    }
}
