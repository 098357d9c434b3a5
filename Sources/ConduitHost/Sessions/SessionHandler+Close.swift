import ConduitKit
import NIOCore
import NIOWebSocket

/// The close handshake (RFC 6455 §7): a close frame each way, then the connection ends.
extension SessionHandler {
    /// Sends a close frame and closes the connection once the peer answers (or after a timeout).
    func close(code: WebSocketErrorCode, reason: String) {
        guard let context, !closeSent else { return }
        closeSent = true
        handOverUnsentMessages()
        writeClose(code: code, reason: reason, context: context)
    }

    /// Fails the connection after a protocol breach (RFC 6455 §7.1.7): the close frame, then
    /// the TCP connection, since nothing more the client sends can be trusted.
    func fail(_ violation: FrameViolation) {
        guard let context, !closeSent else { return }
        closeSent = true
        handOverUnsentMessages()
        writeClose(code: violation.code, reason: violation.reason, context: context)
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// Writes the close frame after every frame made before it; the future completes once
    /// the socket has taken it. The connection is closed after `limits.closeTimeoutSeconds` whatever happens:
    /// a peer that reads nothing never takes the frame, and the connection waited for it with no
    /// limit, out of reach of `stop` too (the id had let it go).
    @discardableResult
    private func writeClose(code: WebSocketErrorCode?, reason: String, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        outbound.appendClose(code: code, reason: reason)
        let written = context.write(wrapOutboundOut(outbound.take()!))
        context.flush()
        let channel = context.channel
        let timeout = channel.eventLoop.scheduleTask(in: .fractionalSeconds(services.settings.closeTimeoutSeconds)) { channel.close(promise: nil) }
        // Cancelled once closed: waiting, the task held the closed connection (about 40 KiB) for
        // the whole timeout, which the resume memory soak counted against every idle id.
        channel.closeFuture.whenComplete { _ in timeout.cancel() }
        return written
    }

    func receivedClose(_ payload: ByteBuffer) {
        guard let context else { return }
        if closeSent {
            context.close(promise: nil)
            return
        }
        closeSent = true
        handOverUnsentMessages()
        var payload = payload
        writeClose(code: CloseFrame.replyCode(to: &payload), reason: "", context: context)
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
