import NIOCore
import NIOWebSocket

/// `conduit serve --conformance-echo`: echoes text and binary messages on the host's own frame
/// reader and writer, with the same control-frame and close rules as a Conduit session, so the
/// Autobahn suite tests the stack the product runs on. Installed instead of `SessionHandler`,
/// so the product's path carries no branch for it.
final class ConformanceEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var reader: ClientFrameReader
    private var outbound = OutboundFrames()
    private var closeSent = false

    init(maxMessageBytes: Int) {
        reader = ClientFrameReader(maxMessageBytes: maxMessageBytes)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reader.read(unwrapInboundIn(data), allocator: context.channel.allocator)
        for frame in reader.frames where !closeSent {
            receive(frame, context: context)
        }
        reader.releaseLargeBuffer()
        if let violation = reader.violation, !closeSent {
            close(code: violation.code, reason: violation.reason, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let bytes = outbound.take() { context.writeAndFlush(wrapOutboundOut(bytes), promise: nil) }
        context.fireChannelReadComplete()
    }

    private func receive(_ frame: ClientFrameReader.Frame, context: ChannelHandlerContext) {
        switch frame.opcode {
        case .ping:
            outbound.append(.pong, payload: reader.payload(of: frame))
        case .pong:
            break
        case .connectionClose:
            var payload = reader.payload(of: frame)
            close(code: CloseFrame.replyCode(to: &payload), reason: "", context: context)
        default:
            guard let message = reader.message(completedBy: frame, allocator: context.channel.allocator) else { return }
            if message.opcode == .text,
               message.payload.withUnsafeReadableBytes({ String(validating: $0, as: UTF8.self) }) == nil {
                return close(code: .dataInconsistentWithMessage, reason: "text frame is not valid UTF-8", context: context)
            }
            outbound.append(message.opcode, payload: message.payload)
        }
    }

    /// Answers or starts the close handshake, then closes the TCP connection once the frame
    /// is written: the suite's client closes its side on receiving it.
    private func close(code: WebSocketErrorCode?, reason: String, context: ChannelHandlerContext) {
        closeSent = true
        outbound.appendClose(code: code, reason: reason)
        context.writeAndFlush(wrapOutboundOut(outbound.take()!))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
