import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Turns each datagram received while reading into a push to the socket's client id
/// (headers `route: udp.data`, `address` and `port`, payload = the datagram), in arrival order.
final class DatagramReader: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private struct Filter {
        var reading = false
        var peer: SocketAddress?
        /// The push headers of the last sender, reused while datagrams keep coming from it:
        /// a burst has one sender, and formatting its address and port per datagram cost more
        /// than the comparison.
        var lastSender: (address: SocketAddress, headers: Headers)?
        /// The pushes' route, under the handler's mount (`udp.data` under `udp.*`).
        let route: String

        /// The headers to push a datagram from `sender` with; nil when it is to be ignored.
        mutating func headers(for sender: SocketAddress) -> Headers? {
            guard reading, peer == nil || peer == sender else { return nil }
            if let lastSender, lastSender.address == sender { return lastSender.headers }
            let headers: Headers = ["route": route, "address": sender.ipAddress ?? "", "port": String(sender.port ?? 0)]
            lastSender = (sender, headers)
            return headers
        }
    }

    private let client: ClientID
    private let pushes: any PushSink
    private let counters: UDPSocket.Counters
    private let filter: NIOLockedValueBox<Filter>
    private let maxDatagramBytes: Int

    init(client: ClientID, pushes: any PushSink, counters: UDPSocket.Counters, route: String, maxDatagramBytes: Int) {
        self.filter = NIOLockedValueBox(Filter(route: route))
        self.maxDatagramBytes = maxDatagramBytes
        self.client = client
        self.pushes = pushes
        self.counters = counters
    }

    var isReading: Bool { filter.withLockedValue { $0.reading } }

    func setReading(_ reading: Bool) { filter.withLockedValue { $0.reading = reading } }

    func onlyFrom(_ peer: SocketAddress?) { filter.withLockedValue { $0.peer = peer } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        counters.received.add(1, ordering: .relaxed)
        guard let headers = filter.withLockedValue({ $0.headers(for: envelope.remoteAddress) }) else {
            counters.ignored.add(1, ordering: .relaxed)
            return
        }
        // Longer than the limit (read cut to one byte past it): dropped whole, never pushed cut.
        guard envelope.data.readableBytes <= maxDatagramBytes else {
            counters.droppedTooLarge()
            return
        }
        // A copy of just the datagram: with vector reads it is a slice of the whole read's
        // buffer, which a push waiting in the id's buffer (client away) would otherwise pin.
        let payload = context.channel.allocator.buffer(buffer: envelope.data)
        switch pushes.push(Message(headers: headers, payload: payload), to: client, delivery: .droppableTallied(counters.evicted)) {
        case .sent: counters.pushed.add(1, ordering: .relaxed)
        case .buffered: counters.buffered.add(1, ordering: .relaxed)
        case .bufferedDroppingOldest: counters.droppedOldest.add(1, ordering: .relaxed)
        case .dropped: counters.dropped.add(1, ordering: .relaxed)
        }
    }

    /// The kernel's drops are read again at most this often while datagrams come: a read of
    /// them per read call cost a system call per datagram at the default size.
    private static let kernelDropsInterval = TimeAmount.milliseconds(100)
    /// When they are next read (uptime nanoseconds).
    private let nextKernelDropsRead = Atomic<UInt64>(0)

    func channelReadComplete(context: ChannelHandlerContext) {
        let now = NIODeadline.now().uptimeNanoseconds
        if now >= nextKernelDropsRead.load(ordering: .relaxed) {
            nextKernelDropsRead.store(now + UInt64(Self.kernelDropsInterval.nanoseconds), ordering: .relaxed)
            counters.readKernelDrops(of: context.channel)
        }
        context.fireChannelReadComplete()
    }
}
