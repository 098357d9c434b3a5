import ConduitNATS
import ConduitTesting
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A server that sends PINGs without end and reads none of the client's PONGs: every PONG
/// waited in the client's outbound queue, a few hundred bytes of memory each, without bound
/// (several GB from a hostile server). The client gives up on such a server instead.
@Suite struct PingFloodTests {
    @Test func aServerThatPingsButNeverReadsIsDisconnected() async throws {
        let closed = Atomic<Bool>(false)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.closeFuture.whenComplete { _ in closed.store(true, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(StallingServer(afterHandshake: { floodWithPings($0) })) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        var options = try NATSClientOptions(url: "nats://127.0.0.1:\(server.localAddress!.port!)", name: "flooded")
        options.initialReconnectDelay = .seconds(60)
        let client = NATSClient(options: options, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        try await client.connect()
        try await waitUntil(timeout: .seconds(30)) { closed.load(ordering: .relaxed) }
        #expect(client.lastError?.contains("PING") == true, "\(client.lastError ?? "no error")")
        await client.close()
    }
}

/// Writes `PING` after `PING` in 60 KB batches, each once the last is written (up to 180 MB).
private func floodWithPings(_ context: ChannelHandlerContext, batches: Int = 3_000) {
    guard batches > 0, context.channel.isActive else { return }
    let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
    context.writeAndFlush(NIOAny(ByteBuffer(string: String(repeating: "PING\r\n", count: 10_000)))).whenSuccess {
        floodWithPings(loopBound.value, batches: batches - 1)
    }
}
