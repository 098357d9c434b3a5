import ConduitKit
import NIOCore
import NIOHTTP1

/// Refuses a request whose body is over the IPC limit with a `PayloadTooLargeError` sentence,
/// as soon as its declared length or the bytes received so far say so. SwiftNIO's aggregator
/// behind it has the same limit, but answers 413 with an empty body (SPEC §8: every bad input
/// gets a clear error). A declared length over the limit reaches neither the aggregator nor
/// the `100 Continue` behind it: the caller is told before it sends the body. A control route's
/// limit is `ControlRoutes.maxBodyBytes` (the largest it reads is a new key): an 8 MB body to
/// `stop` was read whole before it was refused.
final class IPCBodyLimit: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let maxBodyBytes: Int
    private let metrics: HostMetrics
    /// The current request is a control route's.
    private var isControl = false
    private var received = 0
    private var refused = false

    init(maxBodyBytes: Int, metrics: HostMetrics) {
        self.maxBodyBytes = maxBodyBytes
        self.metrics = metrics
    }

    private var limit: Int { isControl ? min(maxBodyBytes, ControlRoutes.maxBodyBytes) : maxBodyBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            received = 0
            let route = IPCTarget.route(ofURI: head.uri)
            isControl = route.hasPrefix(ControlRoutes.prefix) && route != ControlRoutes.events
            if let declared = head.headers["content-length"].first.flatMap(Int.init), declared > limit {
                return refuse(context: context, size: "declares \(declared) bytes")
            }
        case .body(let part):
            received += part.readableBytes
            if received > limit { return refuse(context: context, size: "sent more than that") }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }

    private func refuse(context: ChannelHandlerContext, size: String) {
        refused = true
        let error = ConduitError.payloadTooLarge("\(isControl ? "a control route's" : "an IPC request's") body is at most \(limit) bytes; this one \(size)")
        IPCRefusal.send(.payloadTooLarge, error, countedIn: metrics, context: context)
    }
}
