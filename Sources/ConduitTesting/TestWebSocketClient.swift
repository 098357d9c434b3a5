public import ConduitWire
public import NIOCore
import NIOHTTP1
import NIOPosix
public import NIOWebSocket

/// A real WebSocket client for tests (NIO's client upgrader): sends Conduit messages or any
/// raw frame, and reads what the host answers, waiting for events with timeouts.
public final class TestWebSocketClient: Sendable {
    public let channel: any Channel
    private let inbox: Inbox<WebSocketFrame>

    private init(channel: any Channel, inbox: Inbox<WebSocketFrame>) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Connects to `ws://host:port<path>`; throws `TestClientError.handshakeRefused` when the
    /// server does not switch protocols (use `RawTCPClient.handshakeStatus` to see the status).
    public static func connect(
        host: String = "127.0.0.1", port: Int, path: String, headers: HTTPHeaders = [:],
        maxFrameSize: Int = 1 << 24, receiveBufferBytes: Int? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TestWebSocketClient {
        let eventLoop = group.next()
        let inbox = Inbox<WebSocketFrame>(timers: eventLoop)
        let upgraded = eventLoop.makePromise(of: Void.self)
        var bootstrap = ClientBootstrap(group: eventLoop).channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let receiveBufferBytes {
            // A fixed small buffer (no autotuning) makes a paused reader back up quickly.
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: .init(receiveBufferBytes))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(
                    maxFrameSize: maxFrameSize,
                    automaticErrorHandling: false,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            channel.pipeline.syncOperations.removeHandler(name: UpgradeRequester.name, promise: nil)
                            try channel.pipeline.syncOperations.addHandler(FrameCollector(inbox: inbox))
                            upgraded.succeed()
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
            .get()
        channel.closeFuture.whenComplete { _ in
            inbox.finish()
            upgraded.fail(TestClientError.handshakeRefused)
        }
        try await upgraded.futureResult.get()
        return TestWebSocketClient(channel: channel, inbox: inbox)
    }

    // MARK: Sending

    /// Sends one encoded message as a binary frame (masked, as a client must).
    public func send(_ message: Message) async throws {
        try await sendFrame(WebSocketFrame(fin: true, opcode: .binary, data: message.encoded()))
    }

    public func send(_ headers: Headers, payload: some Sequence<UInt8> = []) async throws {
        try await send(Message(headers: headers, payload: payload))
    }

    /// Sends any frame; it is masked with a random key unless `masked` is false.
    public func sendFrame(_ frame: WebSocketFrame, masked: Bool = true) async throws {
        var frame = frame
        frame.maskKey = masked ? .random() : nil
        try await channel.writeAndFlush(frame)
    }

    /// Sends raw bytes on the socket, bypassing the frame encoder.
    public func sendRaw(_ bytes: [UInt8]) async throws {
        try await channel.pipeline.context(handlerType: WebSocketFrameEncoder.self).flatMap { context in
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)))
        }.get()
    }

    /// Sends `message` and returns the next message (the reply, when nothing else is in flight).
    public func request(_ message: Message, timeout: TimeAmount = .seconds(10)) async throws -> Message {
        try await send(message)
        return try await nextMessage(timeout: timeout)
    }

    /// Starts the close handshake.
    public func close(code: WebSocketErrorCode = .normalClosure) async throws {
        var data = channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        try await sendFrame(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))
    }

    /// Stops reading from the socket, so the server sees a slow reader; `resumeReading` undoes it.
    public func pauseReading() async throws {
        try await channel.setOption(.autoRead, value: false).get()
    }

    public func resumeReading() async throws {
        try await channel.setOption(.autoRead, value: true).get()
        channel.read()
    }

    // MARK: Receiving

    public func nextFrame(timeout: TimeAmount = .seconds(10)) async throws -> WebSocketFrame {
        try await inbox.next(timeout: timeout)
    }

    /// The next binary message, decoded; skips pings/pongs; a close frame throws `closedByServer`.
    public func nextMessage(timeout: TimeAmount = .seconds(10)) async throws -> Message {
        while true {
            let frame = try await nextFrame(timeout: timeout)
            switch frame.opcode {
            case .binary: return try Message(decoding: frame.data)
            case .connectionClose: throw Self.closeError(frame)
            default: continue
            }
        }
    }

    /// The next message with `more=true` parts joined (SPEC §1).
    public func nextJoinedMessage(timeout: TimeAmount = .seconds(10)) async throws -> Message {
        var assembler = ChunkAssembler(limit: .max)
        while true {
            let part = try await nextMessage(timeout: timeout)
            guard part.headers.hasMore else {
                return Message(headers: part.headers, payload: try assembler.complete(with: part.payload))
            }
            try assembler.append(part.payload)
        }
    }

    /// Waits for the server's close frame and returns its code and reason.
    public func nextClose(timeout: TimeAmount = .seconds(10)) async throws -> (code: UInt16, reason: String) {
        while true {
            let frame = try await nextFrame(timeout: timeout)
            if frame.opcode == .connectionClose, case .closedByServer(let code, let reason) = Self.closeError(frame) {
                return (code, reason)
            }
        }
    }

    /// Resolves when the TCP connection is closed.
    public func waitUntilClosed() async throws {
        try await channel.closeFuture.get()
    }

    private static func closeError(_ frame: WebSocketFrame) -> TestClientError {
        var data = frame.unmaskedData
        let code = data.readInteger(as: UInt16.self) ?? 1005
        return .closedByServer(code: code, reason: data.readString(length: data.readableBytes) ?? "")
    }
}

extension WebSocketMaskingKey {
    static func random() -> WebSocketMaskingKey {
        WebSocketMaskingKey((0..<4).map { _ in UInt8.random(in: 0...255) })!
    }
}

/// Hands every frame to the inbox, and answers the server's close frame as a client must.
private final class FrameCollector: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    private let inbox: Inbox<WebSocketFrame>
    private var closeAnswered = false

    init(inbox: Inbox<WebSocketFrame>) {
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        inbox.deliver(frame)
        if frame.opcode == .connectionClose, !closeAnswered {
            closeAnswered = true
            let echo = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: frame.data.getSlice(at: frame.data.readerIndex, length: min(2, frame.data.readableBytes)) ?? ByteBuffer())
            context.writeAndFlush(wrapOutboundOut(echo), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }
}

/// Sends the upgrade request once the connection is up (the client upgrader waits for it).
private final class UpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    static let name = "test.upgrade-requester"
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
