import NIOCore
import NIOHTTP1

/// Answers `Expect: 100-continue` (RFC 9110 §10.1.1) on a request the key gate and the body
/// limit let through: the caller then sends its body. Unanswered, curl waited a second before
/// every upload over 1 KiB, and a client that waits for the 100 waited until the body timeout
/// closed the connection. A declared body over the limit gets no 100: `IPCBodyLimit` answers
/// it instead, before its bytes are sent.
final class IPCExpectContinue: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), head.version.minor >= 1,
           head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }
}
