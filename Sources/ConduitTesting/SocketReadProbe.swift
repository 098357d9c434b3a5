import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

/// How long an event loop goes without reading its sockets: a datagram stamped with its send
/// time goes every millisecond, from another loop, to a socket on the loop watched, and the
/// longest any waited to be read is kept. A task scheduled on the watched loop can't tell this:
/// SwiftNIO runs tasks that tasks queue before it polls its sockets again, so a chain of tasks
/// can keep a loop from reading for seconds while its timers still fire on time.
public final class SocketReadProbe: Sendable {
    private let receiver: any Channel
    private let sender: any Channel
    /// The sender's own thread: on a shared loop, the load it watches delayed the sending.
    private let senderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let sending: RepeatedTask
    private let longest = NIOLockedValueBox(TimeAmount.zero)
    private let received = NIOLockedValueBox(0)
    private let latestSent = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(0))

    private final class Reader: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let longest: NIOLockedValueBox<TimeAmount>
        let count: NIOLockedValueBox<Int>
        let latestSent: NIOLockedValueBox<NIODeadline>

        init(longest: NIOLockedValueBox<TimeAmount>, count: NIOLockedValueBox<Int>, latestSent: NIOLockedValueBox<NIODeadline>) {
            self.longest = longest
            self.count = count
            self.latestSent = latestSent
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let sent = unwrapInboundIn(data).data.getInteger(at: 0, as: UInt64.self) else { return }
            let waited = TimeAmount.nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - sent))
            longest.withLockedValue { $0 = max($0, waited) }
            count.withLockedValue { $0 += 1 }
            latestSent.withLockedValue { $0 = max($0, .uptimeNanoseconds(sent)) }
        }
    }

    /// Starts watching `loop`.
    public init(watching loop: any EventLoop) async throws {
        let reader = Reader(longest: longest, count: received, latestSent: latestSent)
        // Everything waiting is read in one turn: read a few at a time, the datagrams would
        // queue up behind a busy loop and their wait measure the queue, not the loop.
        receiver = try await DatagramBootstrap(group: loop)
            .channelOption(.maxMessagesPerRead, value: 4096)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(reader) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let sender = try await DatagramBootstrap(group: senderGroup).bind(host: "127.0.0.1", port: 0).get()
        self.sender = sender
        let target = receiver.localAddress!
        sending = sender.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .milliseconds(1)) { _ in
            var stamp = sender.allocator.buffer(capacity: 8)
            stamp.writeInteger(NIODeadline.now().uptimeNanoseconds)
            sender.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: stamp), promise: nil)
        }
    }

    /// The longest a datagram waited to be read so far, and how many were read.
    public var longestWait: (wait: TimeAmount, datagrams: Int) {
        (longest.withLockedValue { $0 }, received.withLockedValue { $0 })
    }

    /// Whether the loop has read a datagram sent at `time` or later: it has caught up with what
    /// waited for it until then.
    public func hasRead(sentAfter time: NIODeadline) -> Bool {
        latestSent.withLockedValue { $0 >= time }
    }

    public func stop() async throws {
        sending.cancel()
        try await sender.close()
        try await receiver.close()
        try await senderGroup.shutdownGracefully()
    }
}
