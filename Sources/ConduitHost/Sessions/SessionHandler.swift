import ConduitKit
import ConduitWire
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// A connection's WebSocket life on its event loop: control frames, the close handshake,
/// the bounded outbound queue and flush coalescing. Binary messages go to `dispatch`.
final class SessionHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let client: ClientID
    let window: String
    let services: SessionServices
    var logger: Logger
    /// Joins a large request's chunks (SPEC §1).
    var assembler: ChunkAssembler
    private(set) var session: Session?

    private(set) var context: ChannelHandlerContext?
    /// Messages waiting for the socket to become writable, bounded in bytes and count; whole
    /// messages, so those not written when the socket closes go back to the id's buffer and a
    /// drop never takes part of one.
    private var pending: MessageQueue
    /// Frames that are not messages (pongs, the conformance echo), bounded by the same bytes.
    private var pendingFrames = CircularBuffer<WebSocketFrame>()
    private var pendingFrameBytes = 0
    /// Bytes of the chunk queue taken from the host's budget.
    var chunkBytesReserved = 0
    /// This connection's bound on requests answered from a task, and their deadline.
    let requestLimits: ReplyRouting.RequestLimits
    private var isReading = false
    private var needsFlush = false
    private var flushScheduled = false
    private var closeSent = false
    private var isClosed = false

    init(client: ClientID, window: String, services: SessionServices, logger: Logger) {
        self.client = client
        self.window = window
        self.services = services
        self.logger = logger
        self.assembler = ChunkAssembler(limit: services.settings.chunkQueueBytes)
        self.requestLimits = .init(
            inFlight: InFlightLimit(limit: services.settings.maxRequestsInFlight),
            timeout: .seconds(services.settings.requestTimeoutSeconds))
        self.pending = MessageQueue(
            byteLimit: services.settings.outboundQueueBytes, countLimit: services.settings.outboundQueueMessages,
            budget: services.directory.budget)
    }

    // MARK: Life

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let session = Session(client: client, window: window, channel: context.channel, handler: self)
        self.session = session
        services.metrics.connectionOpened()
        logger.debug("client connected")
        services.directory.attach(session)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        // The session holds this handler and the channel: break the cycle, or every closed
        // connection stays in memory (the soak saw ~6 KB per reconnect).
        session = nil
        self.context = nil
    }

    private func finish() {
        guard !isClosed, session != nil else { return }
        isClosed = true
        services.metrics.connectionClosed()
        assembler.reset()
        syncChunkReservation()
        handOverUnsentMessages()
        logger.debug("client disconnected")
    }

    /// Once closing, the socket takes no more messages: the id's later pushes go to its buffer,
    /// and what waited here goes back to the front of that buffer, in order.
    private func handOverUnsentMessages() {
        guard let session else { return }
        let unsent = pending.takeAll()
        pendingFrames.removeAll()
        pendingFrameBytes = 0
        publishQueueSize()
        services.directory.detach(session, unsent: unsent)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        isReading = true
        let frame = unwrapInboundIn(data)
        // Once our close is sent only the peer's close matters (RFC 6455 §5.5.1).
        guard !closeSent || frame.opcode == .connectionClose else { return }
        // ClientFrameValidator has checked masking; joined fragments arrive already unmasked.
        let payload = frame.maskKey.map { frame.data.unmasked($0, allocator: context.channel.allocator) } ?? frame.data
        switch frame.opcode {
        case .binary where services.mode == .conformanceEcho:
            write(WebSocketFrame(fin: true, opcode: .binary, data: payload))
        case .binary:
            dispatch(payload)
        case .text where services.mode == .conformanceEcho:
            echoText(payload)
        case .text:
            close(code: .unacceptableData, reason: "text frames are not part of the Conduit protocol")
        case .ping:
            write(WebSocketFrame(fin: true, opcode: .pong, data: payload))
        case .pong:
            break
        case .connectionClose:
            receivedClose(payload)
        default:
            close(code: .protocolError, reason: "unexpected opcode \(frame.opcode)")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        isReading = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let violation = error as? ClientFrameValidator.Violation {
            return close(code: .protocolError, reason: violation.reason)
        }
        switch error as? NIOWebSocketFrameAggregator.Error {
        case .accumulatedFrameSizeIsTooLarge?:
            close(code: .messageTooLarge, reason: "the message exceeds \(services.settings.maxMessageBytes) bytes")
        case .some:
            close(code: .protocolError, reason: "bad fragmentation")
        case nil:
            logger.debug("connection error", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    private func echoText(_ payload: ByteBuffer) {
        guard payload.withUnsafeReadableBytes({ String(validating: $0, as: UTF8.self) }) != nil else {
            return close(code: .dataInconsistentWithMessage, reason: "text frame is not valid UTF-8")
        }
        write(WebSocketFrame(fin: true, opcode: .text, data: payload))
    }

    // MARK: Outbound

    /// Sends a reply or an error of this connection's own.
    /// A reply the socket can take now is written without sizing it for a queue (the routed
    /// echo's hot path); otherwise it is queued like any message.
    func send(_ message: Message) {
        if !isClosed, !closeSent, let context, pending.isEmpty, pendingFrames.isEmpty, context.channel.isWritable {
            _ = write(message, context: context)
            return
        }
        send(MessageQueue.Entry(message, delivery: .droppable), reserved: false)
    }

    /// Sends one message (split into parts when its payload exceeds one frame) or queues it
    /// whole while the socket can't take more. `reserved`: its bytes are already taken from
    /// the host's budget (it comes from the id's buffer).
    @discardableResult
    func send(_ entry: MessageQueue.Entry, reserved: Bool) -> PushOutcome {
        guard !isClosed, !closeSent, let context else {
            return services.directory.requeue(entry, reserved: reserved, for: client)
        }
        guard !pending.isEmpty || !pendingFrames.isEmpty || !context.channel.isWritable else {
            if reserved { services.directory.budget.release(entry.bytes) }
            return write(entry.message, context: context) ? .sent : .dropped(.unencodable)
        }
        if reserved {
            // Already accepted, bounded and counted by the id's buffer it comes from: taken
            // over whole (the queue may pass its own bound by that much until it drains).
            pending.takeOver(entry)
            publishQueueSize()
            return .sent
        }
        if services.settings.outboundPolicy == .close, !pending.fits(entry) {
            close(code: .policyViolation, reason: "the client reads too slowly: outbound queue full")
            return services.directory.requeue(entry, reserved: false, asNewest: true, for: client)
        }
        let admission = pending.append(entry, evictOldest: true)
        publishQueueSize()
        switch admission {
        case .accepted(evicted: 0):
            return .sent
        case .accepted(let evicted):
            countOutboundDrops(evicted)
            return .sent
        case .refused(let cause):
            countOutboundDrops(1)
            return .dropped(cause)
        }
    }

    private func countOutboundDrops(_ count: Int) {
        session?.droppedMessages.add(count, ordering: .relaxed)
        services.metrics.outboundDropped(count: count)
    }

    private func publishQueueSize() {
        session?.queuedMessages.store(pending.count, ordering: .relaxed)
        session?.queuedBytes.store(pending.bytes + pendingFrameBytes, ordering: .relaxed)
    }

    /// Writes every part of one message; false when it can't be encoded (logged, counted).
    private func write(_ message: Message, context: ChannelHandlerContext) -> Bool {
        if message.payload.readableBytes <= WireLimits.maxPayloadBytes {
            guard let frame = encodeFrame(message, context: context) else { return false }
            context.write(wrapOutboundOut(frame), promise: nil)
        } else {
            // Every part is encodable when the first is: they share the headers.
            for part in message.split() {
                guard let frame = encodeFrame(part, context: context) else { return false }
                context.write(wrapOutboundOut(frame), promise: nil)
            }
        }
        scheduleFlush(context)
        return true
    }

    /// Payloads from this size on are not copied into the frame: the encoded headers go in
    /// the frame's extension data and the payload buffer is written after them (one writev).
    private static let gatherThreshold = 1024

    private func encodeFrame(_ message: Message, context: ChannelHandlerContext) -> WebSocketFrame? {
        let gather = message.payload.readableBytes >= Self.gatherThreshold
        // Room for the frame header, so NIO's encoder prepends it in place instead of
        // allocating a buffer of its own.
        let headroom = 10
        let size = gather ? message.encodedSize - message.payload.readableBytes : message.encodedSize
        var buffer = context.channel.allocator.buffer(capacity: headroom + size)
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        do {
            try gather ? message.encodePrefix(into: &buffer) : message.encode(into: &buffer)
        } catch {
            logger.error("message can't be encoded", metadata: ["error": "\(error)", "route.name": "\(message.headers.route ?? "")"])
            services.directory.budget.dropped(.unencodable)
            return nil
        }
        services.metrics.messageSent(bytes: size + (gather ? message.payload.readableBytes : 0))
        return gather
            ? WebSocketFrame(fin: true, opcode: .binary, data: message.payload, extensionData: buffer)
            : WebSocketFrame(fin: true, opcode: .binary, data: buffer)
    }

    /// Writes a frame that is not a message (pong, text echo). A peer that keeps sending pings
    /// without reading the pongs meets the same byte bound as messages, and is closed.
    private func write(_ frame: WebSocketFrame) {
        guard let context else { return }
        guard !pendingFrames.isEmpty || !context.channel.isWritable else {
            context.write(wrapOutboundOut(frame), promise: nil)
            return scheduleFlush(context)
        }
        guard pendingFrameBytes + frame.data.readableBytes <= services.settings.outboundQueueBytes else {
            return close(code: .policyViolation, reason: "the client reads too slowly: outbound queue full")
        }
        pendingFrames.append(frame)
        pendingFrameBytes += frame.data.readableBytes
        publishQueueSize()
    }

    private func scheduleFlush(_ context: ChannelHandlerContext) {
        // Inside a read, channelReadComplete flushes once for the whole batch; otherwise one
        // flush at the end of this event loop tick covers every push made in it.
        if isReading {
            needsFlush = true
        } else if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                self.context?.flush()
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let before = pending.bytes + pendingFrameBytes
        while context.channel.isWritable, let frame = pendingFrames.popFirst() {
            pendingFrameBytes -= frame.data.readableBytes
            context.write(wrapOutboundOut(frame), promise: nil)
        }
        while context.channel.isWritable, pendingFrames.isEmpty, let entry = pending.popFirst() {
            _ = write(entry.message, context: context)
        }
        publishQueueSize()
        context.flush()
        if pending.bytes + pendingFrameBytes < before {
            services.directory.queueShrank(for: client)
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Close handshake

    /// Sends a close frame and closes the connection once the peer answers (or after a timeout).
    func close(code: WebSocketErrorCode, reason: String) {
        guard let context, !closeSent else { return }
        closeSent = true
        handOverUnsentMessages()
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)), promise: nil)
        let channel = context.channel
        channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
    }

    private func receivedClose(_ payload: ByteBuffer) {
        guard let context else { return }
        if closeSent {
            context.close(promise: nil)
            return
        }
        closeSent = true
        handOverUnsentMessages()
        var payload = payload
        var reply = context.channel.allocator.buffer(capacity: 2)
        if let code = CloseFrame.replyCode(to: &payload) {
            reply.write(webSocketErrorCode: code)
        }
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
