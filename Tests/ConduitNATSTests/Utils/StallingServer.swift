import NIOCore

/// A NATS server that completes the handshake and then never reads again; `afterHandshake`
/// runs then (a server that goes on writing).
final class StallingServer: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var received = ""
    private let afterHandshake: (ChannelHandlerContext) -> Void

    init(afterHandshake: @escaping (ChannelHandlerContext) -> Void = { _ in }) {
        self.afterHandshake = afterHandshake
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "INFO {\"server_id\":\"stall\",\"max_payload\":1048576,\"headers\":true}\r\n")), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !received.contains("PING") else { return }
        received += String(buffer: unwrapInboundIn(data))
        guard received.contains("PING") else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "PONG\r\n")), promise: nil)
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
        afterHandshake(context)
    }
}
