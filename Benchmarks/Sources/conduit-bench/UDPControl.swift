import ConduitWire
import Foundation
import NIOCore
import NIOWebSocket

/// The `udp` run's Conduit client on its WebSocket: sends requests, matches replies by token,
/// and hands `udp.data` pushes to the flow. Runs on the tool's event loop only.
final class UDPControl: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = ByteBuffer

    struct ReplyError: Error, CustomStringConvertible {
        let description: String
    }

    private let flow: DatagramFlow
    /// The frame encoder's context: requests are written below it as masked frames.
    private let writer: ChannelHandlerContext
    private var replies: [String: EventLoopPromise<ByteBuffer>] = [:]
    private var requests = 0

    init(flow: DatagramFlow, writer: ChannelHandlerContext) {
        self.flow = flow
        self.writer = writer
    }

    /// The `{"data": state}` of a `udp.*` reply, as far as the run needs it.
    struct State: Decodable {
        let port: Int
        let received: Int
    }

    private struct Reply: Decodable {
        let data: State
    }

    /// Sends `route` from any thread and decodes the socket state it replies with.
    func udp(_ route: String) async throws -> State {
        let payload = try await writer.eventLoop.flatSubmit { self.request(route) }.get()
        return try JSONDecoder().decode(Reply.self, from: Data(payload.readableBytesView)).data
    }

    /// Sends a request for `route`; the future has the reply's payload.
    private func request(_ route: String) -> EventLoopFuture<ByteBuffer> {
        requests += 1
        let token = "udp-bench-\(requests)"
        let promise = flow.eventLoop.makePromise(of: ByteBuffer.self)
        do {
            let message = try Message(headers: [HeaderName.route: route, "token": token]).encoded()
            replies[token] = promise
            writer.writeAndFlush(wrapOutboundOut(Workload.maskedFrame(message)), promise: nil)
        } catch {
            promise.fail(error)
        }
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.opcode == .binary else {
            if frame.opcode == .connectionClose { flow.failed("the host closed the WebSocket") }
            return
        }
        guard let message = try? Message(decoding: frame.data) else { return flow.failed("a frame that is no Conduit message") }
        if message.headers["route"] == "udp.data" { return flow.arrived(message.payload) }
        guard let token = message.headers["token"], let reply = replies.removeValue(forKey: token) else {
            return flow.failed("an unexpected message: \(message.headers)")
        }
        if message.headers.contains("error") {
            reply.fail(ReplyError(description: String(buffer: message.payload)))
        } else {
            reply.succeed(message.payload)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flow.pump()
    }

    func channelInactive(context: ChannelHandlerContext) {
        flow.failed("the WebSocket closed")
        for reply in replies.values { reply.fail(ChannelError.alreadyClosed) }
        replies = [:]
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        flow.failed("\(error)")
        context.close(promise: nil)
    }
}
