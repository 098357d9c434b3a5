import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Opens one load connection: plain TCP, or a WebSocket upgraded with NIO's client upgrader.
enum Connect {
    static func open(
        host: String, port: Int, path: String, workload: Workload, inFlight: Int, recorder: Recorder
    ) async throws -> any Channel {
        let requests = try workload.wireBuffers()
        if workload.proto == .tcp {
            return try await bootstrap(recorder.eventLoop).channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        LoadHandler<ByteBuffer>(workload: workload, requests: requests, inFlight: inFlight, recorder: recorder, writer: nil)
                    )
                }
            }.connect(host: host, port: port).get()
        }
        // Requests go out pre-encoded, written below the frame encoder.
        return try await webSocket(host: host, port: port, path: path, eventLoop: recorder.eventLoop) { encoder in
            LoadHandler<WebSocketFrame>(workload: workload, requests: requests, inFlight: inFlight, recorder: recorder, writer: encoder)
        }
    }

    /// Opens a WebSocket on `eventLoop`; once upgraded, adds the handler `makeHandler` returns
    /// for the frame encoder's context (so it may write ready-made frames below it). Only
    /// frames from the server pass the frame decoder.
    static func webSocket(
        host: String, port: Int, path: String, eventLoop: any EventLoop,
        makeHandler: @escaping @Sendable (ChannelHandlerContext) -> any ChannelHandler
    ) async throws -> any Channel {
        let upgraded = eventLoop.makePromise(of: Void.self)
        let channel = try await bootstrap(eventLoop).channelInitializer { channel in
            let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 24, upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    let encoder = try channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
                    try channel.pipeline.syncOperations.addHandler(makeHandler(encoder))
                    upgraded.succeed()
                }
            })
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "\(host):\(port)")
            headers.add(name: "Content-Length", value: "0")
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers(
                    leftOverBytesStrategy: .forwardBytes,
                    withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                )
                try channel.pipeline.syncOperations.addHandler(UpgradeRequester(head: head))
            }
        }.connect(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in upgraded.fail(ChannelError.alreadyClosed) }
        try await upgraded.futureResult.get()
        return channel
    }

    private static func bootstrap(_ eventLoop: any EventLoop) -> ClientBootstrap {
        ClientBootstrap(group: eventLoop).channelOption(.tcpOption(.tcp_nodelay), value: 1)
    }
}

/// Sends the upgrade request once connected (NIO's upgrader adds the WebSocket headers).
private final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
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
