import ConduitClient
public import ConduitWire
public import NIOCore
import NIOHTTP1
import NIOPosix
public import NIOWebSocket
import Synchronization

/// A real WebSocket client for tests (NIO's client upgrader): sends Conduit messages or any
/// raw frame, and reads what the host answers, waiting for events with timeouts.
public final class TestWebSocketClient: Sendable, PausableReading {
    public let channel: any Channel
    private let inbox: Inbox<WebSocketFrame>
    /// Messages read while looking for a particular one (a reply by token, a push by route),
    /// in arrival order: the next reads take them first.
    private let setAside = Mutex<[Message]>([])

    private init(channel: any Channel, inbox: Inbox<WebSocketFrame>) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Connects to `ws://host:port<path>`; throws `TestClientError.handshakeRefused` when the
    /// server does not switch protocols (use `RawTCPClient.handshakeStatus` to see the status).
    /// `paused`: reading stops once the handshake is done (`resumeReading()` starts it), before
    /// the server's first messages are read: a fast replay, paused later, was read whole.
    public static func connect(
        host: String = "127.0.0.1", port: Int, path: String, headers: HTTPHeaders = [:],
        maxFrameSize: Int = 1 << 24, receiveBufferBytes: Int? = nil, paused: Bool = false,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TestWebSocketClient {
        let eventLoop = group.next()
        let inbox = Inbox<WebSocketFrame>(timers: eventLoop)
        let channel = try await WebSocketUpgrade.connect(
            host: host, port: port, path: path, headers: headers, maxFrameSize: maxFrameSize,
            // The tests' patience, not a client's 10 s: beside busy loops a host took longer.
            automaticErrorHandling: false, refusal: TestClientError.handshakeRefused, timeout: Patience.timeAmount, eventLoop: eventLoop,
            configure: { bootstrap in
                // A fixed small buffer (no autotuning) makes a paused reader back up quickly.
                guard let receiveBufferBytes else { return bootstrap }
                return bootstrap.channelOption(.socketOption(.so_rcvbuf), value: .init(receiveBufferBytes))
            },
            upgraded: { channel in
                if paused { try channel.syncOptions?.setOption(.autoRead, value: false) }
                try channel.pipeline.syncOperations.addHandler(FrameCollector(inbox: inbox))
            }
        )
        channel.closeFuture.whenComplete { _ in inbox.finish() }
        return TestWebSocketClient(channel: channel, inbox: inbox)
    }

    // MARK: Sending

    /// Sends one encoded message as a binary frame (masked, as a client must).
    public func send(_ message: Message) async throws {
        try await send(encoded: message.encoded())
    }

    /// Sends `bytes` as one binary frame: a message the test encoded, or broke on purpose.
    public func send(encoded bytes: ByteBuffer) async throws {
        try await sendFrame(WebSocketFrame(fin: true, opcode: .binary, data: bytes))
    }

    /// Sends `messages` as binary frames flushed together, so the host most likely reads
    /// several of them at once.
    public func send(together messages: [Message]) async throws {
        let frames = try messages.map { WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: try $0.encoded()) }
        for frame in frames.dropLast() { channel.write(frame, promise: nil) }
        if let last = frames.last { try await channel.writeAndFlush(last) }
    }

    public func send(_ headers: Headers, payload: some Sequence<UInt8> = []) async throws {
        try await send(Message(headers: headers, payload: payload))
    }

    /// Sends a request of any size as a chunked one (SPEC §2): parts of 60,000 bytes with
    /// `more: true`, then the last with `headers`.
    public func send(chunked bytes: [UInt8], _ headers: Headers) async throws {
        let chunk = 60_000
        var offset = 0
        while bytes.count - offset > chunk {
            try await send(["more": "true"], payload: bytes[offset..<(offset + chunk)])
            offset += chunk
        }
        try await send(headers, payload: bytes[offset...])
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

    /// Sends `message` and returns its reply: the first message carrying its `token` (or
    /// `seq`), pushes before it kept for the next reads. Without a token, the next message.
    public func request(_ message: Message, timeout: TimeAmount = Patience.timeAmount) async throws -> Message {
        try await send(message)
        guard let correlation = message.headers.correlation else { return try await nextMessage(timeout: timeout) }
        return try await nextMessage(timeout: timeout) { $0.headers[correlation.name] == correlation.value }
    }

    /// Starts the close handshake.
    public func close(code: WebSocketErrorCode = .normalClosure) async throws {
        try await sendFrame(closeFrame(code))
    }

    /// Sends `message` and starts the close handshake in the same flush: the host most likely
    /// reads both at once, so the client is away from the message's first answer on, however
    /// loaded the machine.
    public func sendThenClose(_ message: Message) async throws {
        channel.write(WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: try message.encoded()), promise: nil)
        var close = closeFrame(.normalClosure)
        close.maskKey = .random()
        try await channel.writeAndFlush(close)
    }

    private func closeFrame(_ code: WebSocketErrorCode) -> WebSocketFrame {
        var data = channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
    }

    // MARK: Receiving

    public func nextFrame(timeout: TimeAmount = Patience.timeAmount) async throws -> WebSocketFrame {
        try await inbox.next(timeout: timeout)
    }

    /// The next binary message, decoded; skips pings/pongs; a close frame throws `closedByServer`.
    public func nextMessage(timeout: TimeAmount = Patience.timeAmount) async throws -> Message {
        if let kept = setAside.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return kept }
        return try await readMessage(timeout: timeout)
    }

    /// The next `count` messages, in order.
    public func nextMessages(_ count: Int, timeout: TimeAmount = Patience.timeAmount) async throws -> [Message] {
        var messages: [Message] = []
        for _ in 0..<count { messages.append(try await nextMessage(timeout: timeout)) }
        return messages
    }

    /// The next message of `route` (a push, typically); others that come first are kept.
    public func nextMessage(route: String, timeout: TimeAmount = Patience.timeAmount) async throws -> Message {
        try await nextMessage(timeout: timeout) { $0.headers.route == route }
    }

    /// The next message that `matches`; those before it that don't are set aside for later calls.
    public func nextMessage(timeout: TimeAmount = Patience.timeAmount, where matches: (Message) -> Bool) async throws -> Message {
        let kept = setAside.withLock { messages in messages.firstIndex(where: matches).map { messages.remove(at: $0) } }
        if let kept { return kept }
        while true {
            let message = try await readMessage(timeout: timeout)
            if matches(message) { return message }
            setAside.withLock { $0.append(message) }
        }
    }

    private func readMessage(timeout: TimeAmount) async throws -> Message {
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
    public func nextJoinedMessage(timeout: TimeAmount = Patience.timeAmount) async throws -> Message {
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
    public func nextClose(timeout: TimeAmount = Patience.timeAmount) async throws -> (code: UInt16, reason: String) {
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
