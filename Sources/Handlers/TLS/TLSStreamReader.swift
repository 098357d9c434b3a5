import ConduitKit
import ConduitWire
import NIOCore
import NIOTLS

/// The last handler of a client's TLS pipeline: reports the handshake, pushes the bytes the
/// server sends to the client id as `tls.data`, and the server's close as `tls.end`.
///
/// Reads of one event-loop turn are joined into pushes of up to one Conduit message, so a
/// stream of 16 KiB TLS records becomes a few large pushes, never a push split into parts.
final class TLSStreamReader: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The largest payload of one Conduit message (uint16 length).
    static let maxPushBytes = 65_535

    private let client: ClientID
    private let pushes: any PushSink
    private var handshake: EventLoopPromise<Void>?
    /// The handshake completed: from now on a close by the server is a `tls.end`.
    private var established = false
    private var unpushed: ByteBuffer?
    /// A close asked for on the channel (tls.close, expiry, stop): not the server's doing.
    private var closingHere = false
    private var failure: (any Error)?

    init(client: ClientID, pushes: any PushSink, handshake: EventLoopPromise<Void>) {
        self.client = client
        self.pushes = pushes
        self.handshake = handshake
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            handshake?.succeed()
            handshake = nil
            established = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if let held = unpushed?.readableBytes, held + bytes.readableBytes > Self.maxPushBytes {
            pushUnpushed()
        }
        if unpushed == nil {
            unpushed = bytes
        } else {
            unpushed!.writeBuffer(&bytes)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        pushUnpushed()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let handshake {
            handshake.fail(error)
            self.handshake = nil
        } else if failure == nil {
            failure = error
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pushUnpushed()
        if let handshake {
            handshake.fail(TLSFailure.ClosedDuringHandshake())
            self.handshake = nil
        } else if established, !closingHere {
            var headers: Headers = ["route": "tls.end"]
            if let failure { headers["reason"] = TLSFailure.describeEnd(failure) }
            pushes.push(Message(headers: headers, payload: ByteBuffer()), to: client)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A connect that failed after the pipeline was built never reaches channelInactive.
        handshake?.fail(TLSFailure.ClosedDuringHandshake())
        handshake = nil
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        closingHere = true
        context.close(mode: mode, promise: promise)
    }

    private func pushUnpushed() {
        guard let payload = unpushed else { return }
        unpushed = nil
        pushes.push(Message(headers: ["route": "tls.data"], payload: payload), to: client)
    }
}
