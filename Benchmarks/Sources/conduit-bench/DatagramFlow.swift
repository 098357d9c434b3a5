import NIOCore

/// The datagrams of a `udp` run: sends them numbered (the first 8 bytes, big-endian) and
/// counts the pushes that bring them back. At most `window` are unaccounted for at any time,
/// so the host's kernel receive buffer is never overrun by the tool alone. Lives on the
/// tool's event loop and is touched from that thread only (reads go through `eventLoop.submit`).
final class DatagramFlow: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let total: Int
    private let size: Int
    private let window: Int
    /// Datagrams per write: with UDP segmentation offload (`datagramSegmentSize`) the kernel
    /// cuts one write into that many datagrams of `size` bytes.
    private let segments: Int
    private var channel: (any Channel)?
    private var destination: SocketAddress?
    private(set) var sent = 0
    private(set) var received = 0
    /// Pushes whose number was lower than one received before.
    private(set) var outOfOrder = 0
    /// Numbers skipped so far: lost, unless they turn up later (`outOfOrder`).
    private var skipped = 0
    private var next: UInt64 = 0
    private(set) var started = NIODeadline.now()
    private(set) var lastArrival = NIODeadline.now()
    private(set) var errors: [String] = []
    private let finished: EventLoopPromise<Void>

    init(eventLoop: any EventLoop, total: Int, size: Int, window: Int, segments: Int) {
        self.eventLoop = eventLoop
        self.total = total
        self.size = size
        self.window = window
        self.segments = segments
        finished = eventLoop.makePromise()
    }

    /// Completes once every datagram is accounted for, or nothing arrived for `idle`.
    func run(on channel: any Channel, to destination: SocketAddress, idle: TimeAmount) -> EventLoopFuture<Void> {
        self.channel = channel
        self.destination = destination
        started = .now()
        lastArrival = started
        let watchdog = eventLoop.scheduleRepeatedTask(initialDelay: idle, delay: .nanoseconds(idle.nanoseconds / 4)) { _ in
            if NIODeadline.now() - self.lastArrival > idle { self.finished.succeed() }
        }
        pump()
        return finished.futureResult.always { _ in watchdog.cancel() }
    }

    /// A `udp.data` push's payload.
    func arrived(_ datagram: ByteBuffer) {
        guard let number = datagram.getInteger(at: datagram.readerIndex, as: UInt64.self) else {
            return failed("a \(datagram.readableBytes)-byte datagram came back")
        }
        received += 1
        lastArrival = .now()
        if number >= next {
            skipped += Int(number - next)
            next = number + 1
        } else {
            outOfOrder += 1
            skipped -= 1
        }
        if received + skipped == total { finished.succeed() }
    }

    func failed(_ message: String) {
        errors.append(message)
        finished.succeed()
    }

    /// Sends until `window` datagrams are out, then flushes once: NIO writes the batch with
    /// sendmmsg. Called after each read of pushes, not per push, so that batches form.
    func pump() {
        guard let channel, let destination else { return }
        var wrote = false
        while sent < total, sent - received - skipped < window {
            let count = min(total - sent, window - (sent - received - skipped), segments)
            var datagrams = channel.allocator.buffer(capacity: count * size)
            for number in sent..<sent + count {
                datagrams.writeInteger(UInt64(number))
                datagrams.writeRepeatingByte(0x64, count: size - 8)
            }
            channel.write(AddressedEnvelope(remoteAddress: destination, data: datagrams), promise: nil)
            sent += count
            wrote = true
        }
        if wrote { channel.flush() }
    }
}
