import ConduitWire
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization

/// One open socket to the host: sends messages split into frames, and hands what arrives to
/// its callbacks on the channel's event loop, in order, with `more=true` parts joined.
final class WebSocketConnection: Sendable {
    struct Callbacks: Sendable {
        /// On the event loop, once the upgrade is done and before the first message.
        let opened: @Sendable (WebSocketConnection) -> Void
        let arrived: @Sendable (Arrival) -> Void
        let failure: @Sendable (ConduitClientError) -> Void
        /// A frame that does not decode, told alone (none of a message's parts were held).
        let undecodable: @Sendable (ConduitClientError) -> Void
        /// Once, when the connection is gone: the host's close code and reason, if it sent one.
        let closed: @Sendable (_ code: UInt16?, _ reason: String) -> Void
    }

    /// The largest joined message accepted from the host (its parts are 64 KiB each).
    static let maxJoinedBytes = 1 << 28
    static let subprotocol = "conduit"

    let channel: any Channel

    init(channel: any Channel) {
        self.channel = channel
    }

    /// Opens `ws://host:port/<id>/<window>` with the key as a subprotocol (kept out of URLs and
    /// access logs), or in the query when it is not a valid subprotocol token.
    static func open(
        host: String, port: Int, id: String, window: String, key: String, query: [(String, String)] = [],
        timeout: Duration, eventLoop: any EventLoop, callbacks: Callbacks
    ) async throws {
        var parameters = query
        var headers = HTTPHeaders()
        if !key.isEmpty, IPCQuery.escape(key) == key {
            headers.add(name: "Sec-WebSocket-Protocol", value: "\(subprotocol), \(subprotocol).key.\(key)")
        } else {
            parameters.append(("key", key))
        }
        var path = "/\(IPCQuery.escape(id))/\(IPCQuery.escape(window))"
        if !parameters.isEmpty { path += "?" + IPCQuery.encode(parameters) }
        _ = try await WebSocketUpgrade.connect(
            host: host, port: port, path: path, headers: headers, maxFrameSize: 1 << 24,
            automaticErrorHandling: true,
            refusal: ConduitClientError(.connectFailed, "the host at \(host):\(port) refused the WebSocket upgrade (wrong key or id?)"),
            timeout: TimeAmount(timeout), eventLoop: eventLoop,
            upgraded: { channel in
                try channel.pipeline.syncOperations.addHandlers([
                    NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16, maxAccumulatedFrameSize: 1 << 24),
                    MessageReader(callbacks: callbacks),
                ])
                // Gone while upgrading (the reader missed its end): a failed attempt, not a socket.
                guard channel.isActive else { throw ConduitClientError(.connectFailed, "the connection to \(host):\(port) ended during the upgrade") }
                callbacks.opened(WebSocketConnection(channel: channel))
            }
        )
    }

    /// Sends `message`, split into parts when its payload exceeds one frame (SPEC §1: every
    /// part but the last carries `more=true`; the host joins them). Header limits are checked
    /// before anything is written. False, and nothing written, while `maxUnsentBytes` or more
    /// wait to be written: sent to a host that reads slowly or not at all, they grew the
    /// client's memory without end. `pastBound` (a cancellation) goes up to 64 KiB further.
    func send(_ message: Message, pastBound: Bool = false) throws(WireError) -> Bool {
        try message.validateHeaderLimits()
        guard unsentBytes.load(ordering: .relaxed) < Self.maxUnsentBytes + (pastBound ? ClientResume.pastWindowBytes : 0) else { return false }
        let (frames, bytes) = try framesCounted(message.split())
        // The parts go out together: written from another thread one at a time, each became a
        // task of its own on the event loop, two senders' parts interleaved, and the host
        // joined them into requests of the wrong bytes.
        guard channel.eventLoop.inEventLoop else {
            channel.eventLoop.execute { self.write(frames, bytes: bytes) }
            return true
        }
        write(frames, bytes: bytes)
        return true
    }

    /// Counted from `send` (not from the channel's write, which a send from another thread
    /// reaches later), so that sends in a burst see each other.
    private let unsentBytes = Atomic<Int>(0)
    static let maxUnsentBytes = 8 << 20

    private func write(_ frames: [WebSocketFrame], bytes: Int) {
        for frame in frames.dropLast() { channel.write(frame, promise: nil) }
        // Written in order: once the last is, all are (or the channel closed, and none will be).
        channel.writeAndFlush(frames[frames.count - 1]).whenComplete { _ in self.unsentBytes.subtract(bytes, ordering: .relaxed) }
    }

    /// Writes parts with one flush: resume's kept messages, numbered, split and checked when
    /// they were kept, several in a row (`send` would check, split and collect each again).
    /// Counted as `send`'s are, for `takesMore`, once for all of them (a promise a part made a
    /// closure and a callback for every one).
    func write(parts: [Message]) throws(WireError) {
        let (frames, bytes) = try framesCounted(parts)
        guard !frames.isEmpty else { return }
        write(frames, bytes: bytes)
    }

    /// The parts' frames, their bytes counted as unsent from now on.
    private func framesCounted(_ parts: [Message]) throws(WireError) -> (frames: [WebSocketFrame], bytes: Int) {
        let frames = try parts.map(frame)
        let bytes = frames.reduce(0) { $0 + $1.data.readableBytes }
        unsentBytes.add(bytes, ordering: .relaxed)
        return (frames, bytes)
    }

    /// Fewer than `maxUnsentBytes` wait to be written.
    var takesMore: Bool { unsentBytes.load(ordering: .relaxed) < Self.maxUnsentBytes }

    private func frame(_ part: Message) throws(WireError) -> WebSocketFrame {
        var buffer = channel.allocator.buffer(capacity: part.encodedSize)
        try part.encode(into: &buffer)
        return WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: buffer)
    }

    /// Stops or starts reading the socket (what the host sends meanwhile waits in the kernel's
    /// buffers and then on the host).
    func setReading(_ reading: Bool) {
        channel.setOption(.autoRead, value: reading).whenSuccess { [channel] in
            if reading { channel.read() }
        }
    }

    /// Starts the close handshake (1000, and `reason`); the channel closes when the host answers.
    func close(reason: String = "") {
        var data = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: .normalClosure)
        data.writeString(reason)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data)
        channel.writeAndFlush(frame, promise: nil)
        // A host that never answers must not keep the socket open, nor one that reads nothing
        // more (the close frame then never leaves: counted from its write, the wait never began).
        channel.eventLoop.scheduleTask(in: Self.closeWait) { [channel] in channel.close(promise: nil) }
    }

    /// How long a close handshake may take before the connection is simply closed.
    static let closeWait = TimeAmount.seconds(5)
}

/// Decodes binary frames into messages, joins parts, answers pings and the close handshake
/// (and sees outgoing frames, so a close this side started is not answered twice).
final class MessageReader: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let callbacks: WebSocketConnection.Callbacks
    private var joiner: PartJoiner
    private var closeCode: UInt16?
    private var closeReason = ""
    private var closeSent = false
    /// A pong handed to the channel and not yet written, and the last ping since, owed.
    private var pongUnwritten = false
    private var pingOwed: ByteBuffer?

    init(callbacks: WebSocketConnection.Callbacks, joinLimit: Int = WebSocketConnection.maxJoinedBytes) {
        self.callbacks = callbacks
        joiner = PartJoiner(limit: joinLimit)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            read(frame.data)
        case .ping:
            answerPing(frame.data, context: context)
        case .connectionClose:
            var data = frame.data
            closeCode = data.readInteger(as: UInt16.self)
            closeReason = data.readString(length: data.readableBytes) ?? ""
            answerClose(frame.data, context: context)
        case .text:
            callbacks.failure(ConduitClientError(.protocolError, "the host sent a text frame; Conduit messages are binary"))
            context.close(promise: nil)
        default:
            break
        }
    }

    private func read(_ bytes: ByteBuffer) {
        let part: Message
        do {
            part = try Message(decoding: bytes)
        } catch {
            if let failure = joiner.undecodable(.undecodable(error)) {
                callbacks.undecodable(failure)
            }
            return
        }
        if let arrival = joiner.add(part) { callbacks.arrived(arrival) }
    }

    /// At most one pong waits to be written, answering the last ping (RFC 6455 §5.5.3 allows
    /// it): a host that pinged and read nothing had a pong queued for every ping, without end.
    private func answerPing(_ data: ByteBuffer, context: ChannelHandlerContext) {
        guard !pongUnwritten else { return pingOwed = data }
        pongUnwritten = true
        let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: data)
        context.writeAndFlush(wrapOutboundOut(pong)).assumeIsolated().whenComplete { _ in
            self.pongUnwritten = false
            guard let owed = self.pingOwed else { return }
            self.pingOwed = nil
            self.answerPing(owed, context: context)
        }
    }

    /// Echoes the host's close code (RFC 6455 §5.5.1), then closes the connection: once the echo
    /// is written, or after the close wait, should the host read nothing more.
    private func answerClose(_ data: ByteBuffer, context: ChannelHandlerContext) {
        guard !closeSent else { return context.close(promise: nil) }
        closeSent = true
        let code = data.getSlice(at: data.readerIndex, length: min(2, data.readableBytes)) ?? ByteBuffer()
        let echo = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: code)
        context.writeAndFlush(wrapOutboundOut(echo)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        context.eventLoop.assumeIsolated().scheduleTask(in: WebSocketConnection.closeWait) { context.close(promise: nil) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if unwrapOutboundIn(data).opcode == .connectionClose {
            guard !closeSent else {
                promise?.succeed()
                return
            }
            closeSent = true
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        callbacks.closed(closeCode, closeReason)
        context.fireChannelInactive()
    }

    /// The socket's own failures (a reset, a read error) are told apart from a host that sends
    /// what WebSocket does not allow: both were `protocol-error`, which blamed the host for a
    /// dropped network.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let isSocketFailure = error is IOError || error is ChannelError
        callbacks.failure(ConduitClientError(isSocketFailure ? .socketFailed : .protocolError, "socket error: \(error)"))
        context.close(promise: nil)
    }
}
