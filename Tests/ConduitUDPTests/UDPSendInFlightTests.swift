import ConduitKit
import CoreMetrics
import ConduitKitTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing
@testable import ConduitUDP

/// A datagram the kernel can't take yet (EAGAIN on a congested path) waits in the channel.
/// `udp.send` held nothing while it did: a client could queue sends there without end (the
/// audit's run grew the host by 400 MB). Each send now holds its place among the connection's
/// requests in flight (and its bytes of the budget) until written. Loopback never says EAGAIN:
/// a channel whose writes are never done stands in for it.
@Suite("UDP sends waiting for the kernel")
struct UDPSendInFlightTests {
    /// Takes writes and never completes them, as NIO does with datagrams the kernel refuses.
    private final class WritesNeverDone: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = AddressedEnvelope<ByteBuffer>
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {}
    }

    @Test func aSendWaitingForTheKernelHoldsItsPlaceInFlight() throws {
        let channel = EmbeddedChannel(handler: WritesNeverDone())
        let counters = UDPSocket.Counters(totals: UDPTotals(route: "udp.*", metrics: NOOPMetricsHandler.instance))
        let client = ClientID("sender")!
        let pushes = RecordingPushSink()
        let reader = DatagramReader(client: client, pushes: pushes, counters: counters, route: "udp.data", maxDatagramBytes: 1024)
        let socket = UDPSocket(channel: channel, reader: reader, counters: counters, pushes: pushes, route: "udp.end", maxDatagramBytes: 1024)
        let limit = InFlightLimit(limit: 2)
        let answers = NIOLockedValueBox<[Result<Reply, ConduitError>]>([])
        let responder = Responder(inFlight: limit) { answer in answers.withLockedValue { $0.append(answer) } }
        let destination = try SocketAddress(ipAddress: "127.0.0.1", port: 9)
        for _ in 0..<3 { try socket.send(ByteBuffer(string: "datagram"), to: destination, responder) }
        // Two wait in the channel, holding both places; the third is refused at once.
        let refused = try #require(answers.withLockedValue { $0 }.first)
        #expect(answers.withLockedValue { $0.count } == 1)
        guard case .failure(let error) = refused else {
            Issue.record("answered \(refused)")
            return
        }
        #expect(error.kind == .unavailable, "\(error)")
    }
}
