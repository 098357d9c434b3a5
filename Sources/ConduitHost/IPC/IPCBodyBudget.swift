import ConduitKit
import NIOCore
import NIOHTTP1

/// An IPC request's body takes its memory from the host's budget (the incoming half, as
/// WebSocket messages still arriving do) as it arrives, and holds it until the socket has
/// taken the response (an echo's response is the body): 100 connections with the key, each
/// part way through a 15 MB body, held 1,443 MB outside it. Charged as the buffer that joins
/// the body grows (by doubling); past the budget the request is answered 503 and its
/// connection closed, the rest left unread.
final class IPCBodyBudget: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart

    private let budget: BufferBudget
    private let metrics: HostMetrics
    private var reservation = BudgetReservation()
    private var received = 0
    private var refusing = false

    init(budget: BufferBudget, metrics: HostMetrics) {
        self.metrics = metrics
        self.budget = budget
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        reservation.releaseAll(in: budget)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refusing else { return }
        if case .body(let part) = unwrapInboundIn(data) {
            received += part.readableBytes
            guard reservation.match(received.grownBufferCapacity, in: budget) else {
                refusing = true
                reservation.releaseAll(in: budget)
                budget.dropped(.hostBudget)
                return IPCRefusal.send(.serviceUnavailable, .unavailable("the host's buffer budget is full: this request's body can't be held"), countedIn: metrics, context: context)
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else { return context.write(data, promise: promise) }
        // Answered: the body is let go once the socket has taken the response (the next
        // request may arrive meanwhile, and takes its own).
        received = 0
        let written = promise ?? context.eventLoop.makePromise()
        reservation.release(in: budget, when: written.futureResult)
        context.write(data, promise: written)
    }
}
