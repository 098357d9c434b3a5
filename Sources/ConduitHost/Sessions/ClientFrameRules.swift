import NIOCore
import NIOWebSocket

/// RFC 6455 §5.1–5.2 rules for every frame a client sends, fragments included: it must be
/// masked and carry no reserved bits (no extension is negotiated). Sits before the frame
/// aggregator, which drops both facts when it joins fragments; a frame that breaks a rule is
/// dropped and reported to the `SessionHandler`, which closes with 1002.
final class ClientFrameRules: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    struct Violation: Error, CustomStringConvertible {
        let description: String
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.rsv1 || frame.rsv2 || frame.rsv3 {
            context.fireErrorCaught(Violation(description: "reserved bits set without an extension"))
        } else if frame.maskKey == nil {
            context.fireErrorCaught(Violation(description: "client frames must be masked"))
        } else {
            context.fireChannelRead(data)
        }
    }
}
