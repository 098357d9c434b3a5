import NIOCore
import NIOHTTP1

/// Answers an HTTP request that was not upgraded with the policy's status, then closes; closes
/// a socket whose request could not be parsed too.
final class HandshakeRejectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let name = "conduit.handshake-rejection"

    private let policy: HandshakePolicy
    /// Set when the policy accepted the handshake but the host refused it afterwards.
    private let refusal: NIOLoopBoundBox<HandshakePolicy.Rejected?>
    private let metrics: HostMetrics
    private var responded = false

    init(policy: HandshakePolicy, refusal: NIOLoopBoundBox<HandshakePolicy.Rejected?>, metrics: HostMetrics) {
        self.policy = policy
        self.refusal = refusal
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !responded else { return }
        responded = true
        let rejection: HandshakePolicy.Rejected = switch policy.evaluate(head) {
        case .failure(let rejected): rejected
        case .success: refusal.value ?? .init(status: .badRequest, reason: "the upgrade could not be completed")
        }
        Self.answer(head, with: rejection, counting: metrics, context: context)
    }

    /// Writes `rejection` as the response to `head`, then closes; counted by its reason.
    static func answer(_ head: HTTPRequestHead, with rejection: HandshakePolicy.Rejected, counting metrics: HostMetrics, context: ChannelHandlerContext) {
        metrics.handshakeRefused(rejection.refusal)
        var body = context.channel.allocator.buffer(capacity: rejection.reason.utf8.count + 1)
        body.writeString(rejection.reason + "\n")
        var headers: HTTPHeaders = [
            "content-type": "text/plain; charset=utf-8", "content-length": "\(body.readableBytes)", "connection": "close",
        ]
        headers.add(contentsOf: rejection.advertised)
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: head.version, status: rejection.status, headers: headers))), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// A request that could not be parsed was answered 400 by SwiftNIO's HTTP error handler,
    /// which leaves closing to the rest of the pipeline: left open, each such socket held its
    /// descriptor until the handshake timeout. (A refused upgrade is an error too, and is
    /// answered above.)
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else { return context.fireErrorCaught(error) }
        context.close(promise: nil)
    }
}
