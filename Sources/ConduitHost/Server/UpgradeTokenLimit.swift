import NIOCore
import NIOHTTP1

/// Refuses a handshake whose `Upgrade` header names many protocols before SwiftNIO's upgrade
/// handler reads it: that handler tries the names one by one, a level of recursion each, and
/// 39,000 of them (which a `maxHandshakeBytes` of 1 MiB lets in) overflowed the event loop's
/// stack: a client without the key crashed the host. Gone from the pipeline after the first
/// head, which is all a connection sends before it is upgraded or refused.
final class UpgradeTokenLimit: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// RFC 6455 needs one; a client offering a few protocols in order of preference is served.
    static let maxProtocols = 8
    private let metrics: HostMetrics
    private var refused = false

    init(metrics: HostMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The rest of a refused request goes nowhere: the connection closes once answered.
        guard !refused else { return }
        guard case .head(let head) = unwrapInboundIn(data) else { return context.fireChannelRead(data) }
        let named = Self.protocolCount(head.headers)
        guard named <= Self.maxProtocols else {
            refused = true
            let reason = "the Upgrade header names \(named) protocols; a handshake may name at most \(Self.maxProtocols)"
            return HandshakeRejectionHandler.answer(head, with: .init(status: .badRequest, reason: reason, refusal: .notAnUpgrade), counting: metrics, context: context)
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The protocols `Upgrade` names over all its lines, counted by their commas: splitting the
    /// list (`canonicalForm`) made a string of each, all to be counted.
    static func protocolCount(_ headers: HTTPHeaders) -> Int {
        headers["upgrade"].reduce(0) { count, line in count + 1 + line.utf8.count { $0 == UInt8(ascii: ",") } }
    }
}
