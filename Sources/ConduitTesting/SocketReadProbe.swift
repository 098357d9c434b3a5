import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

/// How long an event loop goes without reading its sockets: a datagram stamped with its send
/// time goes every millisecond, from a thread of its own, to a socket on the loop watched, and the
/// longest any waited to be read is kept. A task scheduled on the watched loop can't tell this:
/// SwiftNIO runs tasks that tasks queue before it polls its sockets again, so a chain of tasks
/// can keep a loop from reading for seconds while its timers still fire on time.
public final class SocketReadProbe: Sendable {
    private let receiver: any Channel
    private let sender: any Channel
    /// The sender's own thread: on a shared loop, the load it watches delayed the sending.
    private let senderGroup: MultiThreadedEventLoopGroup
    private let sending: RepeatedTask
    private let readings: NIOLockedValueBox<Readings>

    private struct Readings {
        var longestWait = TimeAmount.zero
        var datagrams = 0
        /// The send time of the newest datagram read.
        var latestSent = NIODeadline.uptimeNanoseconds(0)
    }

    private final class Reader: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let readings: NIOLockedValueBox<Readings>

        init(_ readings: NIOLockedValueBox<Readings>) {
            self.readings = readings
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var stamp = unwrapInboundIn(data).data
            guard let sent = stamp.readInteger(as: UInt64.self) else { return }
            let waited = TimeAmount.nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - sent))
            readings.withLockedValue { readings in
                readings.longestWait = max(readings.longestWait, waited)
                readings.datagrams += 1
                readings.latestSent = max(readings.latestSent, .uptimeNanoseconds(sent))
            }
        }
    }

    /// Starts watching `loop`.
    public init(watching loop: any EventLoop) async throws {
        let readings = NIOLockedValueBox(Readings())
        self.readings = readings
        // Everything waiting is read in one turn: read a few at a time, the datagrams would
        // queue up behind a busy loop and their wait measure the queue, not the loop.
        let receiver = try await DatagramBootstrap(group: loop)
            .channelOption(.maxMessagesPerRead, value: 4096)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Reader(readings)) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.receiver = receiver
        let senderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.senderGroup = senderGroup
        let sender: any Channel
        do {
            sender = try await DatagramBootstrap(group: senderGroup).bind(host: "127.0.0.1", port: 0).get()
        } catch {
            try? await receiver.close()
            try? await senderGroup.shutdownGracefully()
            throw error
        }
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
        readings.withLockedValue { ($0.longestWait, $0.datagrams) }
    }

    /// Whether the loop has read a datagram sent at `time` or later: it has caught up with what
    /// waited for it until then.
    public func hasRead(sentAfter time: NIODeadline) -> Bool {
        readings.withLockedValue { $0.latestSent >= time }
    }

    public func stop() async throws {
        sending.cancel()
        try await sender.close()
        try await receiver.close()
        try await senderGroup.shutdownGracefully()
    }
}
