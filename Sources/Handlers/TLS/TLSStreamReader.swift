import ConduitKit
import ConduitWire
import NIOCore
import NIOTLS

/// The last handler of a client's TLS pipeline: reports the handshake, pushes the bytes the
/// server sends to the client id as `tls.data`, and the server's close as `tls.end`.
///
/// Reads of one event-loop turn are joined into pushes of up to one Conduit message, so a
/// stream of 16 KiB TLS records becomes a few large pushes, never a push split into parts.
///
/// A byte stream loses no bytes (SPEC §3): pushes are `.reliable`; while the client is
/// congested nothing more is read from the server (`autoRead` off) until the host says it is
/// writable again; a client congested for longer than `congestionTimeout`, or whose queue
/// refuses a push, gets `tls.end` with a reason instead of a stream with a hole.
///
/// Until the connection is the client's (`TLSHeldPushes`), reading stops at the handshake's
/// end; `Release` starts it again. Once a close is asked for here, nothing more is pushed.
final class TLSStreamReader: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The largest payload of one Conduit message (uint16 length).
    static let maxPushBytes = 65_535

    private let client: ClientID
    private let pushes: any PushSink
    private let routes: TLSPushRoutes
    private var handshake: EventLoopPromise<Void>?
    /// The handshake completed: from now on a close by the server is a `tls.end`.
    private var established = false
    private var unpushed: ByteBuffer?
    /// A close asked for on the channel (tls.close, expiry, stop): not the server's doing.
    private var closingHere = false
    private var failure: (any Error)?
    /// Why the host ended the stream itself (a client too slow), for `tls.end`.
    private var endReason: String?
    private let congestionTimeout: TimeAmount
    /// Set while reading is paused for a congested client.
    private var congestion: Scheduled<Void>?

    init(client: ClientID, pushes: any PushSink, routes: TLSPushRoutes, handshake: EventLoopPromise<Void>, congestionTimeout: TimeAmount) {
        self.client = client
        self.pushes = pushes
        self.routes = routes
        self.handshake = handshake
        self.congestionTimeout = congestionTimeout
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            _ = context.channel.setOption(.autoRead, value: false)
            handshake?.succeed()
            handshake = nil
            established = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The client closed it, or a connect it cancelled: what still comes is no one's.
        guard !closingHere else { return }
        var bytes = unwrapInboundIn(data)
        // A read may be larger than a push (SwiftNIO SSL hands on up to 256 KiB at once, and such
        // a read went out whole, in parts): it is cut to fit. A push refused ends the stream, and
        // the bytes after the hole are not the client's.
        while bytes.readableBytes > 0, endReason == nil {
            let held = unpushed?.readableBytes ?? 0
            guard held < Self.maxPushBytes else {
                pushUnpushed(context: context)
                continue
            }
            var piece = bytes.readSlice(length: min(Self.maxPushBytes - held, bytes.readableBytes))!
            if unpushed == nil {
                unpushed = piece
            } else {
                unpushed!.writeBuffer(&piece)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        pushUnpushed(context: context)
        if endReason == nil, congestion == nil, pushes.isCongested(client) { pauseReading(context: context) }
        context.fireChannelReadComplete()
    }

    /// Stops reading from the server until the client drains, or ends the stream if it doesn't
    /// within `congestionTimeout`.
    private func pauseReading(context: ChannelHandlerContext) {
        let loop = context.eventLoop.assumeIsolated()
        _ = context.channel.setOption(.autoRead, value: false)
        congestion = loop.scheduleTask(in: congestionTimeout) { [self] in
            end(context: context, reason: "the client read too slowly: congested for \(congestionTimeout.nanoseconds / 1_000_000_000) s")
        }
        waitUntilWritable(context: context)
    }

    /// Reads again once the client drains. Called back early (many wait for the id), it waits
    /// again, its deadline unchanged. The callback holds this handler and its context weakly:
    /// kept by the host until the id drains, it held a connection closed meanwhile, channel
    /// and all.
    private func waitUntilWritable(context: ChannelHandlerContext) {
        let resume = NIOLoopBound({ [weak self, weak context] in
            guard let self, let context, let scheduled = congestion else { return }
            guard !pushes.isCongested(client) else { return waitUntilWritable(context: context) }
            scheduled.cancel()
            congestion = nil
            _ = context.channel.setOption(.autoRead, value: true)
            context.read()
        }, eventLoop: context.eventLoop)
        pushes.whenWritable(client) { resume.eventLoop.execute { resume.value() } }
    }

    /// Ends the stream from this side with a reason the client sees in `tls.end`.
    private func end(context: ChannelHandlerContext, reason: String) {
        guard endReason == nil else { return }
        endReason = reason
        unpushed = nil
        readTheServersClose(context: context)
        context.close(promise: nil)
    }

    /// Reads again while the channel closes: SwiftNIO SSL waits for the server's close_notify,
    /// which a paused channel never read (a stream ended while its client was congested told
    /// it 5 s late, when SwiftNIO SSL gave up waiting). What comes meanwhile is dropped.
    private func readTheServersClose(context: ChannelHandlerContext) {
        _ = context.channel.setOption(.autoRead, value: true)
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
        congestion?.cancel()
        congestion = nil
        pushUnpushed(context: context)
        if let handshake {
            handshake.fail(TLSFailure.ClosedDuringHandshake())
            self.handshake = nil
        } else if established, !closingHere {
            var headers: Headers = ["route": routes.end]
            if let reason = endReason ?? failure.map(TLSFailure.describeEnd) { headers["reason"] = reason }
            StreamEnd.push(Message(headers: headers, payload: ByteBuffer()), to: client, pushes: pushes, retryingOn: context.eventLoop)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A connect that failed after the pipeline was built never reaches channelInactive.
        handshake?.fail(TLSFailure.ClosedDuringHandshake())
        handshake = nil
    }

    /// Ends the stream with a reason the client sees in `tls.end` (`TLSConnection.end`).
    struct End: Sendable {
        let reason: String
    }

    /// The connection is the client's (`TLSConnection.release`): reading starts again.
    struct Release: Sendable {}

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let ending = event as? End {
            end(context: context, reason: ending.reason)
        } else if event is Release {
            if !closingHere, endReason == nil, congestion == nil {
                _ = context.channel.setOption(.autoRead, value: true)
                context.read()
            }
        } else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        promise?.succeed()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        closingHere = true
        unpushed = nil
        readTheServersClose(context: context)
        context.close(mode: mode, promise: promise)
    }

    /// `tls.end`'s reason when the client's queue refused a push of the stream.
    static func refusedReason(_ cause: DropCause) -> String {
        "the client's queue can't take more (\(cause.rawValue)); the stream ends here"
    }

    private func pushUnpushed(context: ChannelHandlerContext) {
        guard let payload = unpushed else { return }
        unpushed = nil
        let outcome = pushes.push(Message(headers: ["route": routes.data], payload: payload), to: client, delivery: .reliable)
        if case .dropped(let cause) = outcome { end(context: context, reason: Self.refusedReason(cause)) }
    }
}

/// The routes of the stream's pushes, under the handler's mount (`tls.data` under `tls.*`).
struct TLSPushRoutes: Sendable {
    let data: String
    let end: String

    init(_ context: HandlerContext) {
        data = context.route("data")
        end = context.route("end")
    }
}
