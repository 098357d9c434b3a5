@testable import ConduitClient
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The client's reading of a fallback stream from a broken host.
@Suite("Client: the events stream's framing")
struct EventsStreamLimitTests {
    /// Answers every connection with a 200 stream whose first frame announces 4 GB, then 1 MB
    /// of zeros, then closes.
    private final class BrokenStream: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            context.write(NIOAny(ByteBuffer(string: head)), promise: nil)
            context.write(NIOAny(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF])), promise: nil)
            let channel = context.channel
            context.writeAndFlush(NIOAny(ByteBuffer(repeating: 0, count: 1 << 20))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// A length no message has is an error at once: the stream was buffered toward 4 GB, and
    /// ended without a word when the host closed it.
    @Test func aFrameLengthNoMessageHasIsAnError() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(BrokenStream()) }
            .bind(host: "127.0.0.1", port: 0).get()
        let ipc = IPCClient(port: server.localAddress!.port!, key: "any-key-123")
        let error = await #expect(throws: IPCClientError.self) {
            try await ipc.events(for: "broken") { _ in true }
        }
        #expect(error?.message.contains("4294967295 bytes") == true, "\(error?.message ?? "")")
        try await server.close()
    }

    /// Answers every connection with a 200 stream of `frames`, each after its length, then closes.
    private final class FramedStream: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let frames: [ByteBuffer]
        init(_ frames: [ByteBuffer]) { self.frames = frames }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var body = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
            for frame in frames {
                body.writeInteger(UInt32(frame.readableBytes))
                body.writeImmutableBuffer(frame)
            }
            let channel = context.channel
            context.writeAndFlush(NIOAny(body)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// A frame of the fallback stream that does not decode is reported and the stream read on,
    /// as on the socket: it ended the stream, and the next, asked for from the same position,
    /// brought it again, every two seconds for ever, and nothing after it.
    @Test func aFrameThatDoesNotDecodeIsReportedAndTheStreamReadOn() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(FramedStream([try! numberedPush(1).encoded(), ByteBuffer(bytes: [9, 9, 9]), try! numberedPush(2).encoded()])) }
            .bind(host: "127.0.0.1", port: 0).get()
        let arrivals = NIOLockedValueBox<[String]>([])
        let failures = NIOLockedValueBox<[ConduitClientError]>([])
        let firstStreamEnded = NIOLockedValueBox(false)
        let receiver = FallbackReceiver(
            endpoint: IPCEndpoint(port: server.localAddress!.port!, sharedKey: "any-key-123"), id: "bad-frame", query: { [] },
            deliver: { arrival in
                guard case .message(let message, _) = arrival, !firstStreamEnded.withLockedValue({ $0 }) else { return true }
                arrivals.withLockedValue { $0.append(message.headers["n"] ?? "?") }
                return true
            },
            failure: { error in failures.withLockedValue { $0.append(error) } },
            streamEnded: { firstStreamEnded.withLockedValue { $0 = true } }, finished: {}
        )
        try await waitUntil { firstStreamEnded.withLockedValue { $0 } }
        receiver.cancel()
        #expect(arrivals.withLockedValue { $0 } == ["1", "2"])
        let failure = try #require(failures.withLockedValue { $0.first })
        #expect(failure.code == .protocolError)
        #expect(failure.message.contains("can't be read"), "\(failure)")
        try await server.close()
    }

    /// Each message read was a view of the chunk it came in, whose storage was copied whole
    /// for every message read (the chunk still shared): each message kept a chunk's storage
    /// alive, while a stream's bound (`events()`, held arrivals) counts the message's size.
    @Test func eachStreamedMessageHoldsOnlyItsOwnBytes() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(FramedStream((1...2_000).map { try! numberedPush($0).encoded() })) }
            .bind(host: "127.0.0.1", port: 0).get()
        var held: [Message] = []
        try await IPCClient(port: server.localAddress!.port!, key: "any-key-123").events(for: "many") { message in
            held.append(message)
            return true
        }
        #expect(held.count == 2_000)
        #expect(held.map { $0.headers["n"] } == (1...2_000).map { "\($0)" })
        let storage = held.map(\.payload.storageCapacity).max() ?? 0
        #expect(storage <= 256, "a message of \(held[0].encodedSize) bytes holds a storage of \(storage)")
        try await server.close()
    }

    /// Answers every connection with `status` and a body that never ends (until the client
    /// closes): what a program other than the host could answer on the IPC port.
    private final class EndlessBody: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let status: String
        init(status: String) { self.status = status }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.write(NIOAny(ByteBuffer(string: "HTTP/1.1 \(status)\r\nConnection: close\r\n\r\n")), promise: nil)
            Self.pump(context.channel)
        }

        private static func pump(_ channel: any Channel) {
            channel.writeAndFlush(ByteBuffer(repeating: UInt8(ascii: "x"), count: 1 << 16)).whenSuccess { pump(channel) }
        }
    }

    private static func endless(_ status: String, group: any EventLoopGroup) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.pipeline.addHandler(EndlessBody(status: status)) }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// A refusal whose body never ended was read for ever (its deadline ends with the head),
    /// all of it kept for the error: the call hung and its memory grew.
    @Test(.timeLimit(.minutes(1))) func aRefusalWithABodyWithoutEndIsAnErrorAtOnce() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await Self.endless("409 Conflict", group: loops)
        let ipc = IPCClient(port: server.localAddress!.port!, key: "any-key-123", group: loops)
        let error = await #expect(throws: IPCClientError.self) { try await ipc.events(for: "endless") { _ in true } }
        #expect(error?.status == .conflict)
        try await server.close()
        try await loops.shutdownGracefully()
    }

    /// A response was collected whole, for as long as the call's deadline (60 s by default)
    /// allowed: gigabytes on a fast connection. The server and the client on loops of their
    /// own: 64 MiB through the loops a full run shares took past a minute, twice in four runs,
    /// and the server's pump, a write as soon as the last was taken, held one of those loops
    /// for as long (three other tests hit their time limit in the same run).
    @Test(.timeLimit(.minutes(3))) func aResponsePastTheLimitIsAnErrorAtOnce() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await Self.endless("200 OK", group: loops)
        let ipc = IPCClient(port: server.localAddress!.port!, key: "any-key-123", timeout: .seconds(600), group: loops)
        let error = await #expect(throws: IPCClientError.self) { try await ipc.request(.GET, "/internal.conduit.status") }
        #expect(error?.message.contains("passes \(IPCClient.maxResponseBytes) bytes") == true, "\(String(describing: error))")
        try await server.close()
        try await loops.shutdownGracefully()
    }
}
