import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Turns each datagram received while reading into a push to the socket's client id
/// (headers `route: udp.data`, `address` and `port`, payload = the datagram, no copy), in
/// arrival order.
final class DatagramReader: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private struct Filter {
        var reading = false
        var peer: SocketAddress?
    }

    private let client: ClientID
    private let pushes: any PushSink
    private let counters: UDPSocket.Counters
    private let filter = NIOLockedValueBox(Filter())

    init(client: ClientID, pushes: any PushSink, counters: UDPSocket.Counters) {
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
        let (reading, peer) = filter.withLockedValue { ($0.reading, $0.peer) }
        guard reading, peer == nil || peer == envelope.remoteAddress else {
            counters.ignored.add(1, ordering: .relaxed)
            return
        }
        let headers: Headers = [
            "route": "udp.data",
            "address": envelope.remoteAddress.ipAddress ?? "",
            "port": String(envelope.remoteAddress.port ?? 0),
        ]
        switch pushes.push(Message(headers: headers, payload: envelope.data), to: client) {
        case .sent: counters.pushed.add(1, ordering: .relaxed)
        case .buffered: counters.buffered.add(1, ordering: .relaxed)
        case .bufferedDroppingOldest: counters.droppedOldest.add(1, ordering: .relaxed)
        }
    }
}
