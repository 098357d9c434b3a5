import ConduitWire
import NIOCore
import NIOWebSocket

/// What travels on a connection: raw bytes (TCP) or WebSocket frames.
protocol EchoUnit {
    /// How many replies this inbound unit completes; `pendingBytes` carries TCP remainders,
    /// `hostPosition` is set to the unit's resume position, if it has one.
    func repliesCompleted(by workload: Workload, pendingBytes: inout Int, hostPosition: inout UInt64?) -> Int
}

extension ByteBuffer: EchoUnit {
    func repliesCompleted(by workload: Workload, pendingBytes: inout Int, hostPosition: inout UInt64?) -> Int {
        pendingBytes += readableBytes
        let replies = pendingBytes / workload.size
        pendingBytes %= workload.size
        return replies
    }
}

extension WebSocketFrame: EchoUnit {
    /// Decodes a Conduit frame once, for both what it ends and its position (set aside as the
    /// host does: the tool's own cost of resume must stay small beside the host's).
    func repliesCompleted(by workload: Workload, pendingBytes: inout Int, hostPosition: inout UInt64?) -> Int {
        guard opcode == .binary || opcode == .continuation else { return 0 }
        var positions = SetAsideNumbers(ResumeHeader.ack, ResumeHeader.position)
        var headers = Headers()
        let decoded = workload.proto == .conduit && (try? Message(decoding: data, reusing: &headers, settingAside: &positions)) != nil
        if workload.resume, case .number(let position) = positions.secondValue { hostPosition = position }
        return workload.endsReply(self, headers: decoded ? headers : nil) ? 1 : 0
    }
}

/// Keeps `inFlight` requests outstanding on one connection: each reply sends the next request.
/// Replies come back in order, so a FIFO of send times gives each round trip. Requests are
/// written as ready-made wire bytes (`Workload.wireBuffers`).
final class LoadHandler<Unit: EchoUnit>: ChannelInboundHandler {
    typealias InboundIn = Unit
    typealias OutboundOut = ByteBuffer

    private let workload: Workload
    private let requests: [ByteBuffer]
    private let inFlight: Int
    private let recorder: Recorder
    private var sentAt = CircularBuffer<NIODeadline>()
    private var pendingBytes = 0
    /// Where requests are written: the frame encoder's context, so the ready-made frames pass
    /// below it; nil: this handler's own context (TCP).
    private let writer: ChannelHandlerContext?
    /// Resume: the next request position, replies not yet acknowledged.
    private var nextPosition: UInt64 = 1
    private var unacknowledged = 0
    private var numbered: NumberedFrames?
    private var numberedParts: NumberedParts?
    private let acknowledgements: [NumberedFrame]
    /// The host position to acknowledge on the next request, sent in this read.
    private var owedAck: UInt64?
    /// By digit counts (position × 100 + ack).
    private var acknowledging: [Int: AcknowledgingFrame] = [:]

    init(workload: Workload, requests: [ByteBuffer], inFlight: Int, recorder: Recorder, writer: ChannelHandlerContext?) {
        self.writer = writer
        self.workload = workload
        self.requests = requests
        self.inFlight = inFlight
        self.recorder = recorder
        numbered = workload.resume ? try? workload.numberedFrames(inFlight: inFlight) : nil
        numberedParts = workload.resume ? workload.numberedParts() : nil
        acknowledgements = workload.resume ? (try? Workload.acknowledgementFrames()) ?? [] : []
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
        var position: UInt64?
        let replies = unit.repliesCompleted(by: workload, pendingBytes: &pendingBytes, hostPosition: &position)
        if let position { acknowledge(position) }
        for _ in 0..<replies {
            if workload.toolWorkNanoseconds > 0 { Self.busyWait(workload.toolWorkNanoseconds) }
            guard let sent = sentAt.popFirst() else { return recorder.failed("a reply nobody asked for") }
            recorder.replyArrived(sentAt: sent, now: .now())
            send(context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // An acknowledgement no request of this read carried goes alone.
        if let ack = owedAck { sendAcknowledgement(ack, context: context) }
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        recorder.failed("\(error)")
        context.close(promise: nil)
    }

    private static func busyWait(_ nanoseconds: UInt64) {
        let until = NIODeadline.now() + .nanoseconds(Int64(nanoseconds))
        while NIODeadline.now() < until {}
    }

    private func send(_ context: ChannelHandlerContext) {
        sentAt.append(.now())
        if workload.resume {
            if let ack = owedAck, let frame = acknowledgingFrame(position: nextPosition, ack: ack) {
                owedAck = nil
                nextPosition += 1
                (writer ?? context).write(wrapOutboundOut(frame), promise: nil)
                return
            }
            if let frame = numbered?.frame(position: nextPosition) {
                nextPosition += 1
                (writer ?? context).write(wrapOutboundOut(frame), promise: nil)
                return
            }
            // Each part takes a position of its own, as the clients number them.
            guard let frames = try? numberedParts?.frames(from: nextPosition), let parts = numberedParts?.count else {
                return recorder.failed("can't encode")
            }
            nextPosition += UInt64(parts)
            for buffer in frames { (writer ?? context).write(wrapOutboundOut(buffer), promise: nil) }
            return
        }
        for buffer in requests { (writer ?? context).write(wrapOutboundOut(buffer), promise: nil) }
    }

    /// Resume: notes the host position of what arrived and acknowledges every 32, on the next
    /// request of this read (or alone when it ends without one).
    private func acknowledge(_ position: UInt64) {
        unacknowledged += 1
        guard unacknowledged >= 32 else { return }
        unacknowledged = 0
        owedAck = position
    }

    private func sendAcknowledgement(_ ack: UInt64, context: ChannelHandlerContext) {
        owedAck = nil
        let frame = acknowledgements[ack.decimalDigitCount - 1].frame(position: ack)
        (writer ?? context).write(wrapOutboundOut(frame), promise: nil)
    }

    /// A one-frame request carrying `ack` too; nil when requests take several frames.
    private func acknowledgingFrame(position: UInt64, ack: UInt64) -> ByteBuffer? {
        guard numbered != nil else { return nil }
        let key = position.decimalDigitCount * 100 + ack.decimalDigitCount
        if acknowledging[key] == nil {
            acknowledging[key] = try? workload.acknowledgingFrame(positionDigits: position.decimalDigitCount, ackDigits: ack.decimalDigitCount)
        }
        return acknowledging[key]?.frame(position: position, ack: ack)
    }
}
