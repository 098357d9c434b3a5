import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A scripted stand-in for the host's IPC listener: answers `status` with `socketPort`, and
/// holds every events stream's request, unanswered, until the test greets it.
final class FakeIPCHost: Sendable {
    let port: Int
    private let server: any Channel
    /// Each events stream's request target and its connection, in order.
    private let streams: NIOLockedValueBox<[(target: String, channel: any Channel)]>

    private init(server: any Channel, streams: NIOLockedValueBox<[(target: String, channel: any Channel)]>) {
        self.server = server
        self.port = server.localAddress?.port ?? 0
        self.streams = streams
    }

    static func start(socketPort: Int) async throws -> FakeIPCHost {
        let streams = NIOLockedValueBox<[(target: String, channel: any Channel)]>([])
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RequestReader(socketPort: socketPort) { target in
                        streams.withLockedValue { $0.append((target, channel)) }
                    })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FakeIPCHost(server: server, streams: streams)
    }

    /// The target of the `index`th events stream asked for (from 0), once it was.
    func streamTarget(_ index: Int) async throws -> String {
        try await waitUntil { self.streams.withLockedValue { $0.count > index } }
        return streams.withLockedValue { $0[index].target }
    }

    /// Answers the `index`th events stream with its head and a greeting of `epoch` (a reset,
    /// unless `resumed` is given).
    func greetStream(_ index: Int, epoch: String, resumed: Int? = nil) async throws {
        var headers: Headers = ["route": "conduit.resume", "epoch": epoch, "resumed": "\(resumed ?? 0)", "replayed": "0", "lost": "0", "ack": "0"]
        if resumed == nil { headers.append("reset", "true") }
        var body = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
        Self.frame(Message(headers: headers), into: &body)
        try await stream(index).writeAndFlush(body)
    }

    /// Sends messages on the `index`th events stream, after its greeting, in one write: a
    /// client that gives the stream up after one of them can't fail the write of the rest.
    func send(_ messages: [Headers], onStream index: Int) async throws {
        var body = ByteBuffer()
        for headers in messages { Self.frame(Message(headers: headers), into: &body) }
        try await stream(index).writeAndFlush(body)
    }

    private func stream(_ index: Int) -> any Channel {
        streams.withLockedValue { $0[index].channel }
    }

    /// The events stream's framing: the encoded message's length (uint32 BE), then it.
    private static func frame(_ message: Message, into body: inout ByteBuffer) {
        let encoded = try! message.encoded()
        body.writeInteger(UInt32(encoded.readableBytes))
        body.writeImmutableBuffer(encoded)
    }

    func stop() async throws {
        for stream in streams.withLockedValue({ $0 }) { try? await stream.channel.close() }
        try await server.close()
    }
}

/// Reads a request's head: answers `status`, hands an events stream's target on, unanswered.
private final class RequestReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let socketPort: Int
    private let onStream: @Sendable (String) -> Void
    private var head = ""

    init(socketPort: Int, onStream: @escaping @Sendable (String) -> Void) {
        self.socketPort = socketPort
        self.onStream = onStream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        head += String(buffer: unwrapInboundIn(data))
        guard head.contains("\r\n\r\n") else { return }
        let target = head.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        head = ""
        if target.contains("internal.conduit.events") { return onStream(target) }
        let status = #"{"port":\#(socketPort),"isActive":true,"sharedKey":"fake-host-key"}"#
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(status.utf8.count)\r\n\r\n\(status)"
        context.writeAndFlush(NIOAny(ByteBuffer(string: answer)), promise: nil)
    }
}
