public import NIOCore
import NIOPosix

/// An ordinary UDP socket outside the host: sends datagrams to it and receives what it sends.
public final class UDPPeer: Sendable {
    public let channel: any Channel
    private let received: AsyncStream<AddressedEnvelope<ByteBuffer>>
    private let collector: Collector

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let continuation: AsyncStream<AddressedEnvelope<ByteBuffer>>.Continuation
        init(_ continuation: AsyncStream<AddressedEnvelope<ByteBuffer>>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
    }

    public init() async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: AddressedEnvelope<ByteBuffer>.self)
        let collector = Collector(continuation)
        received = stream
        self.collector = collector
        channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    public var port: Int { channel.localAddress!.port! }

    public func send(_ bytes: [UInt8], to port: Int) async throws {
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: port), data: ByteBuffer(bytes: bytes)))
    }

    /// The next datagram that reaches this socket, within `timeout`.
    public func next(timeout: Duration = Patience.duration) async throws -> AddressedEnvelope<ByteBuffer> {
        try await withThrowingTaskGroup(of: AddressedEnvelope<ByteBuffer>?.self) { group in
            group.addTask { [received] in
                var iterator = received.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let datagram = first else { throw TestClientError.timedOut }
            return datagram
        }
    }

    public func close() async throws { try await channel.close() }
}
