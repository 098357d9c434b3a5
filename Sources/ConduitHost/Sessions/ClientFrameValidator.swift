import NIOCore
import NIOWebSocket

/// Checks what RFC 6455 requires of every frame a client sends, before fragments are joined
/// (the aggregator unmasks, so masking can only be checked here): masked, no reserved bits
/// (we negotiate no extension). A violation closes the connection with 1002.
final class ClientFrameValidator: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    struct Violation: Error {
        let reason: String
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.maskKey == nil {
            context.fireErrorCaught(Violation(reason: "client frames must be masked"))
        } else if frame.rsv1 || frame.rsv2 || frame.rsv3 {
            context.fireErrorCaught(Violation(reason: "reserved bits set without an extension"))
        } else {
            context.fireChannelRead(data)
        }
    }
}
