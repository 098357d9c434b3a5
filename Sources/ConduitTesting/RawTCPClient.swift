public import NIOCore
import NIOPosix

/// A plain TCP connection for bad-input tests: write any bytes, read what comes back.
public final class RawTCPClient: Sendable, PausableReading {
    public let channel: any Channel
    private let inbox: Inbox<ByteBuffer>

    private init(channel: any Channel, inbox: Inbox<ByteBuffer>) {
        self.channel = channel
        self.inbox = inbox
    }

    /// `receiveBufferBytes`: a small socket receive buffer, for a client that stops reading.
    public static func connect(
        host: String = "127.0.0.1", port: Int, receiveBufferBytes: Int? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RawTCPClient {
        let eventLoop = group.next()
        let inbox = Inbox<ByteBuffer>(timers: eventLoop)
        var bootstrap = ClientBootstrap(group: eventLoop)
        if let receiveBufferBytes { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: .init(receiveBufferBytes)) }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteCollector(inbox: inbox))
                }
            }
            .connect(host: host, port: port)
            .get()
        return RawTCPClient(channel: channel, inbox: inbox)
    }

    public func send(_ bytes: some Sequence<UInt8>) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    public func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Everything the server sends until it closes the connection.
    public func readUntilClosed(timeout: TimeAmount = Patience.timeAmount) async throws -> ByteBuffer {
        var all = ByteBuffer()
        while true {
            do {
                var chunk = try await inbox.next(timeout: timeout)
                all.writeBuffer(&chunk)
            } catch TestClientError.closed {
                return all
            }
        }
    }

    /// Reads until `count` bytes have arrived.
    public func read(count: Int, timeout: TimeAmount = Patience.timeAmount) async throws -> ByteBuffer {
        var all = ByteBuffer()
        while all.readableBytes < count {
            var chunk = try await inbox.next(timeout: timeout)
            all.writeBuffer(&chunk)
        }
        return all
    }

    public func close() async throws {
        try await channel.close()
    }

    /// Sends a WebSocket upgrade request for `path` and returns the HTTP status the server
    /// answers with (101 on success).
    public static func handshakeStatus(
        port: Int, path: String, extraHeaders: [(String, String)] = [], omitKey: Bool = false
    ) async throws -> Int {
        let client = try await connect(port: port)
        defer { client.channel.close(promise: nil) }
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        if !omitKey { request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" }
        for (name, value) in extraHeaders { request += "\(name): \(value)\r\n" }
        try await client.send(request + "\r\n")
        let response = try await client.read(count: 12)
        let statusText = response.getString(at: response.readerIndex + 9, length: 3) ?? ""
        return Int(statusText) ?? -1
    }
}

private final class ByteCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let inbox: Inbox<ByteBuffer>

    init(inbox: Inbox<ByteBuffer>) {
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.deliver(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }
}
