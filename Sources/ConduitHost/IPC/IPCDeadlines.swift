import NIOCore
import NIOHTTP1

/// Time limits of an IPC connection (SPEC §8 hardening), so no caller can hold one open by
/// doing nothing or by trickling bytes:
/// - *idle*: while the connection waits for a request (after it opened, or after the last
///   response ended), the request's head must be complete within `idle` — an idle keep-alive
///   connection and a head sent a byte at a time both end there;
/// - *body*: once a head is read, the whole body must arrive within `body`;
/// - *taken*: a response must be taken by the caller's socket within `idle` of its end being
///   written — one never read held its request's body in the budget for as long as the caller
///   kept the connection.
/// A response still coming (an events stream, a slow handler) is never cut.
final class IPCDeadlines: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart

    private let idle: TimeAmount
    private let body: TimeAmount
    private var timer: Scheduled<Void>?
    /// Closes the connection if the response being written is not taken within `idle`.
    private var untaken: Scheduled<Void>?
    /// Request heads read so far: a response whose writing ends after the next request began
    /// (pipelined) must not start the idle timer over that request.
    private var requestsBegun = 0

    init(idle: TimeAmount, body: TimeAmount) {
        self.idle = idle
        self.body = body
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(idle, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        untaken?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestsBegun += 1
            arm(body, context: context)
        case .end: disarm()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            // The response is out: the connection now waits for the next request, unless that
            // one has begun meanwhile.
            let begun = requestsBegun
            let written = context.eventLoop.makePromise(of: Void.self)
            untaken?.cancel()
            let untaken = context.eventLoop.assumeIsolated().scheduleTask(in: idle) { context.close(promise: nil) }
            self.untaken = untaken
            written.futureResult.assumeIsolated().whenComplete { _ in untaken.cancel() }
            written.futureResult.assumeIsolated().whenSuccess {
                if self.requestsBegun == begun { self.arm(self.idle, context: context) }
            }
            written.futureResult.cascade(to: promise)
            context.write(data, promise: written)
        } else {
            context.write(data, promise: promise)
        }
    }

    /// Closes the connection when `amount` passes.
    private func arm(_ amount: TimeAmount, context: ChannelHandlerContext) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { context.close(promise: nil) }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
