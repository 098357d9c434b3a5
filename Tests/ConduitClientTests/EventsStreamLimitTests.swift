import ConduitClient
import NIOCore
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
}
