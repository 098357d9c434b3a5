import NIOCore
import NIOWebSocket

/// What travels on a connection: raw bytes (TCP) or WebSocket frames.
protocol EchoUnit {
    /// The outbound form of one request buffer.
    static func request(_ buffer: ByteBuffer) -> Self
    /// How many replies this inbound unit completes; `pendingBytes` carries TCP remainders.
    func repliesCompleted(by workload: Workload, pendingBytes: inout Int) -> Int
}

extension ByteBuffer: EchoUnit {
    static func request(_ buffer: ByteBuffer) -> ByteBuffer { buffer }

    func repliesCompleted(by workload: Workload, pendingBytes: inout Int) -> Int {
        pendingBytes += readableBytes
        let replies = pendingBytes / workload.size
        pendingBytes %= workload.size
        return replies
    }
}

extension WebSocketFrame: EchoUnit {
    static func request(_ buffer: ByteBuffer) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .binary, maskKey: WebSocketMaskingKey([0x1F, 0x2E, 0x3D, 0x4C]), data: buffer)
    }

    func repliesCompleted(by workload: Workload, pendingBytes: inout Int) -> Int {
        (opcode == .binary || opcode == .continuation) && workload.endsReply(self) ? 1 : 0
    }
}

/// Keeps `inFlight` requests outstanding on one connection: each reply sends the next request.
/// Replies come back in order, so a FIFO of send times gives each round trip.
final class LoadHandler<Unit: EchoUnit>: ChannelInboundHandler {
    typealias InboundIn = Unit
    typealias OutboundOut = Unit

    private let workload: Workload
    private let requests: [ByteBuffer]
    private let inFlight: Int
    private let recorder: Recorder
    private var sentAt = CircularBuffer<NIODeadline>()
    private var pendingBytes = 0

    init(workload: Workload, requests: [ByteBuffer], inFlight: Int, recorder: Recorder) {
        self.workload = workload
        self.requests = requests
        self.inFlight = inFlight
        self.recorder = recorder
    }

    /// Added once the connection is ready (after the upgrade for WebSocket).
    func handlerAdded(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        for _ in 0..<inFlight { send(context) }
        context.flush()
    }

    func channelActive(context: ChannelHandlerContext) {
        handlerAdded(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let unit = unwrapInboundIn(data)
        if let frame = unit as? WebSocketFrame, frame.opcode == .connectionClose {
            recorder.failed("the server closed the connection")
            return context.close(promise: nil)
        }
        for _ in 0..<unit.repliesCompleted(by: workload, pendingBytes: &pendingBytes) {
            guard let sent = sentAt.popFirst() else { return recorder.failed("a reply nobody asked for") }
            recorder.replyArrived(sentAt: sent, now: .now())
            send(context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        recorder.failed("\(error)")
        context.close(promise: nil)
    }

    private func send(_ context: ChannelHandlerContext) {
        sentAt.append(.now())
        for buffer in requests { context.write(wrapOutboundOut(Unit.request(buffer)), promise: nil) }
    }
}
