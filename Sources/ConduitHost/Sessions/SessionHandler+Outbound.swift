import ConduitKit
import ConduitWire
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// What the connection sends: replies and pushes, queued in bytes while the socket can't take
/// them, framed, and written together once a read batch.
extension SessionHandler {
    /// Sends a handler's reply to a request that reached it at `received`, its parts joined
    /// first (`ReplyParts`). Inlined into the session's delivery: the routed echo's replies
    /// pass here.
    @inline(__always)
    func sendReply(_ message: Message, received: NIODeadline) {
        guard replyParts != nil || message.headers.hasMore else { return send(message) }
        joinReplyPart(message, of: ReplyParts.Request(correlation: message.headers.correlation?.value ?? "", received: received))
    }

    private func joinReplyPart(_ message: Message, of request: ReplyParts.Request) {
        // Parts may keep coming as long as a request may run.
        let parts = replyParts ?? ReplyParts(maxAge: TimeAmount(requestLimits.timeout))
        defer { replyParts = parts.isIdle ? nil : parts }
        let outcome = parts.add(message, of: request, budget: services.directory.budget)
        for late in parts.takeExpired() {
            replyError(.timeout("the reply's last part did not come within \(requestLimits.timeout)"), route: late.route, correlation: late.correlation)
        }
        switch outcome {
        case .send(let whole): send(whole)
        case .held: break
        case .refused:
            replyError(.unavailable("the host's buffer budget is full: the reply's parts can't be joined"), route: message.headers.route, correlation: message.headers.correlation)
        }
    }

    /// Sends a reply or an error of this connection's own.
    /// A reply the socket can take now is written without sizing it for a queue (the routed
    /// echo's hot path) unless it is sent in parts; otherwise it is queued like any message.
    func send(_ message: Message) {
        guard !isClosed, !closeSent, let context else {
            // Made after the socket closed (a slow handler's reply): it goes to the id after
            // everything already waiting for it, not in front.
            return answerIfRefused(message, send(MessageQueue.Entry(message, delivery: .droppable), reserved: false, asNewest: true))
        }
        if pending.isEmpty, replaying == nil, context.channel.isWritable, !Self.holdsWhileWriting(message) {
            if write(message, context: context) == .superseded {
                handOver(superseded: MessageQueue.Entry(message, delivery: .droppable), reserved: false)
            }
            return
        }
        answerIfRefused(message, send(MessageQueue.Entry(message, delivery: .droppable), reserved: false))
    }

    /// A reply the queue refused (the budget full, a queue full of reliable pushes) is answered
    /// with an error in its place: dropped whole and counted, it left its request unanswered
    /// and the client waiting for its own timeout. An error refused in turn is not answered.
    private func answerIfRefused(_ reply: Message, _ outcome: PushOutcome) {
        guard case .dropped(let cause) = outcome, reply.headers[HeaderName.error] == nil, let correlation = reply.headers.correlation else { return }
        replyError(
            .unavailable("the reply (\(reply.payload.readableBytes) bytes) can't be queued: \(cause.rawValue); try again"),
            route: reply.headers.route, correlation: correlation)
    }

    /// Sends one message (split into parts when its payload exceeds one frame) or queues it
    /// whole while the socket can't take more. `reserved`: its bytes are already taken from
    /// the host's budget (it comes from the id's buffer). `asNewest`: on a closed socket it
    /// goes back to the id after what waits there (else in front: an older message).
    @discardableResult
    func send(_ entry: MessageQueue.Entry, reserved: Bool, asNewest: Bool = false) -> PushOutcome {
        guard !isClosed, !closeSent, let context else {
            return services.directory.requeue(entry, reserved: reserved, asNewest: asNewest, for: client)
        }
        let writesNow = pending.isEmpty && replaying == nil && context.channel.isWritable
        if writesNow, reserved || !Self.holdsWhileWriting(entry.message) {
            let outcome = reserved ? write(reserved: entry, context: context) : write(entry.message, context: context)
            if outcome == .superseded { return handOver(superseded: entry, reserved: reserved) }
            return outcome == .written ? .sent : .dropped(.unencodable)
        }
        if reserved {
            // Already accepted, bounded and counted by the id's buffer it comes from: taken
            // over whole (the queue may pass its own bound by that much until it drains).
            pending.takeOver(entry)
            publishQueueSize()
            return .sent
        }
        // A resuming socket too: its oldest dropped had no position, and the client reading on
        // never learned of it. Closed, it resumes, and the id's window keeps what its buffer can't.
        if services.settings.outboundPolicy == .close || resume != nil, !pending.fits(entry) {
            close(code: .policyViolation, reason: "the client reads too slowly: outbound queue full")
            return services.directory.requeue(entry, reserved: false, asNewest: true, for: client)
        }
        let admission = pending.append(entry, evictOldest: true)
        // A message sent in parts that the socket can take now is queued only to take its
        // bytes from the budget (or be refused there, counted): it is written at once.
        if writesNow { writePending(context) }
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
        services.directory.budget.droppedFromOutboundQueue(count: count)
    }

    func publishQueueSize() {
        session?.queuedMessages.store(pending.count, ordering: .relaxed)
        session?.queuedBytes.store(queuedBytes, ordering: .relaxed)
    }

    enum WriteOutcome {
        case written
        /// It can't be encoded (logged, counted).
        case unencodable
        /// Another socket of the id resumed: this one no longer numbers its messages.
        case superseded
    }

    /// A message sent in parts (up to 16 MiB) keeps its bytes of the budget until the socket has
    /// taken its last part: what the socket has not taken waits in the channel, whose
    /// writability bounds it only to one message past its 64 KiB watermark (20 clients that
    /// read nothing held 345 MB of 16 MiB echoes there, outside the budget). A message of one
    /// frame holds none once handed over: the watermark bounds what the channel keeps of it,
    /// and the routed echo pays no promise and no budget update for it.
    static func holdsWhileWriting(_ message: Message) -> Bool {
        message.payload.readableBytes > WireLimits.maxPayloadBytes
    }

    /// Writes a message whose bytes are taken from the budget: they are given back once the
    /// socket has taken it when it `holdsWhileWriting`, else now (or when it can't be encoded).
    /// Superseded, they stay taken: the message goes back to a queue.
    private func write(reserved entry: MessageQueue.Entry, context: ChannelHandlerContext) -> WriteOutcome {
        let held = Self.holdsWhileWriting(entry.message) ? entry.bytes : 0
        let outcome = write(entry.message, holding: held, context: context)
        if outcome == .unencodable || (outcome == .written && held == 0) { services.directory.budget.release(entry.bytes) }
        return outcome
    }

    /// Writes every part of one message, numbered on a resuming connection. `held`: bytes of the
    /// budget given back once the socket has taken its last part (or the channel closed).
    private func write(_ message: Message, holding held: Int = 0, context: ChannelHandlerContext) -> WriteOutcome {
        if let attachedResume {
            return attachedResume._withUnsafeGuaranteedRef { writeNumbered(message, resume: $0, holding: held, context: context) }
        }
        if message.payload.readableBytes <= WireLimits.maxPayloadBytes {
            guard append(message, context: context) else { return .unencodable }
        } else {
            // Its parts are written apart from their frames: they keep no more than the whole.
            guard append(parts: message.compacted().split(), holding: held, context: context) else { return .unencodable }
        }
        scheduleFlush(context)
        return .written
    }

    private func writeNumbered(_ message: Message, resume: ResumeState, holding held: Int, context: ChannelHandlerContext) -> WriteOutcome {
        guard let writerID else { return .superseded }
        // The position is the host's to give: the one appended takes the place of any a handler set.
        if message.payload.readableBytes <= WireLimits.maxPayloadBytes {
            // Handed to the channel only after the id's lock: a write can re-enter here.
            do {
                // `ack` goes along only where the message has room for it beside `pos`; else
                // it goes alone once the read ends.
                // (The room is counted only when an ack is due: a call into the wire module.)
                let ackAbove = clientPositions.ackDue && message.headers.count + 2 <= WireLimits.maxHeaders ? clientPositions.lastAckSent : nil
                guard let stamped = try resume.stamp(message, writer: writerID, into: &outbound, ackAbove: ackAbove) else { return .superseded }
                if ackAbove != nil { clientPositions.sent(ack: stamped.ack) }
                handOff(stamped.appended, of: message, context: context)
            } catch {
                unencodable(message, error)
                return .unencodable
            }
        } else {
            guard let numbered = resume.stamp(splitting: message, writer: writerID) else { return .superseded }
            guard append(parts: numbered, holding: held, context: context) else { return .unencodable }
        }
        scheduleFlush(context)
        return .written
    }

    /// Writes a message outside the numbering and the outbound queue: resume's greeting, its
    /// replay (bounded by the window that holds it) and acknowledgements.
    func writeUnnumbered(_ message: Message, appending field: Message.AppendedField? = nil) {
        guard let context, !closeSent else { return }
        if append(message, appending: field, context: context) { scheduleFlush(context) }
    }

    /// A message this replaced socket can no longer number goes, with what it had not written,
    /// to the socket that resumed the id; one not yet accepted may be refused there (the
    /// budget), which its sender is told (it was told `.sent`).
    @discardableResult
    private func handOver(superseded entry: MessageQueue.Entry, reserved: Bool) -> PushOutcome {
        defer { closeSuperseded() }
        guard !reserved else {
            pending.takeOver(entry)
            return .sent
        }
        guard case .refused(let cause) = pending.append(entry, evictOldest: false) else { return .sent }
        countOutboundDrops(1)
        return .dropped(cause)
    }

    /// Closes a socket whose id another socket resumed, at the end of this event-loop turn:
    /// until then what it is handed (a drain of the id's buffer in progress) queues behind the
    /// message it could not number, so all of it goes back to the id in order. Closing at once
    /// sent each later message back on its own, in front of the one before: reversed.
    private func closeSuperseded() {
        guard let context else { return }
        context.eventLoop.assumeIsolated().execute { self.close(code: .normalClosure, reason: "replaced") }
    }

    /// A tick's frames are handed to the channel once they reach this many bytes, so the
    /// channel's writability follows a burst of pushes.
    private static let batchBytes = 64 * 1024

    private func append(
        _ message: Message, appending field: Message.AppendedField? = nil, isPart: Bool = false, holding held: Int = 0, context: ChannelHandlerContext
    ) -> Bool {
        do {
            handOff(try outbound.append(message, appending: field, isPart: isPart), of: message, holding: held, context: context)
            return true
        } catch {
            unencodable(message, error)
            return false
        }
    }

    /// Appends one message's parts, the last holding `held` bytes of the budget until written.
    /// Every part is encodable when the first is: they share the headers.
    private func append(parts: [Message], holding held: Int, context: ChannelHandlerContext) -> Bool {
        partsOpen = true
        defer { partsClosed() }
        for (index, part) in parts.enumerated() {
            guard append(part, isPart: true, holding: index == parts.count - 1 ? held : 0, context: context) else { return false }
        }
        return true
    }

    /// A message's last part is written: an acknowledgement that waited for it goes.
    func partsClosed() {
        partsOpen = false
        if clientPositions.ackDue { sendClientAck() }
    }

    /// Counts `message`'s frame just appended, and hands the tick's frames to the channel when
    /// its payload is to follow them, they fill a batch or they end a message holding `held`
    /// bytes of the budget (given back once the socket has taken them).
    private func handOff(_ appended: OutboundFrames.Appended, of message: Message, holding held: Int = 0, context: ChannelHandlerContext) {
        traffic.sent(bytes: appended.encodedBytes)
        if appended.payloadIsApart {
            // The pong waits for the payload: written between the two, it landed inside the frame.
            frameOpen = true
            emitFrames(context)
            context.write(wrapOutboundOut(message.payload), promise: releasing(held, context))
            frameOpen = false
            emitPendingPong(context)
        } else if held > 0 || outbound.byteCount >= Self.batchBytes {
            emit(context, promise: releasing(held, context))
        }
    }

    /// A promise that gives `bytes` back to the budget once its write completes: the socket
    /// took it, or the channel closed and failed it. None for 0.
    private func releasing(_ bytes: Int, _ context: ChannelHandlerContext) -> EventLoopPromise<Void>? {
        guard bytes > 0 else { return nil }
        let promise = context.eventLoop.makePromise(of: Void.self)
        let budget = services.directory.budget
        promise.futureResult.whenComplete { _ in budget.release(bytes) }
        return promise
    }

    /// A message that breaks a limit of SPEC §1 is dropped, logged and counted.
    private func unencodable(_ message: Message, _ error: WireError) {
        logger.error("message can't be encoded", metadata: ["error": "\(error)", "route.name": "\(message.headers.route ?? "")"])
        services.directory.budget.dropped(.unencodable)
    }

    /// Hands the tick's frames to the channel (without flushing), and the pong that waits.
    private func emit(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        emitFrames(context, promise: promise)
        emitPendingPong(context)
    }

    /// `promise` goes with the frames' write; only after an append, when there are frames.
    private func emitFrames(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        if let bytes = outbound.take() { context.write(wrapOutboundOut(bytes), promise: promise) }
        pongInOutbound = false
    }

    private func emitPendingPong(_ context: ChannelHandlerContext) {
        // The optional first: nearly every call has no pong waiting, and needs no writability check.
        if let pong = pendingPong, !frameOpen, context.channel.isWritable {
            pendingPong = nil
            context.write(wrapOutboundOut(pong), promise: nil)
        }
    }

    func flush(_ context: ChannelHandlerContext) {
        emit(context)
        context.flush()
        services.metrics.record(&traffic)
    }

    /// Answers a ping. One pong goes with each write to the socket, and the pong to the latest
    /// ping waits for the next, as RFC 6455 §5.5.3 allows: a peer that sent pings without
    /// reading the pongs had 8 MiB of them queued per connection outside the host's budget,
    /// and a read's worth (up to 1 MB) more in the channel (561 MB for 100 such peers).
    func writePong(_ payload: ByteBuffer) {
        guard let context else { return }
        defer { scheduleFlush(context) }
        guard pendingPong != nil || pongInOutbound || !context.channel.isWritable else {
            outbound.append(.pong, payload: payload)
            pongInOutbound = true
            return
        }
        var frame = context.channel.allocator.buffer(capacity: payload.readableBytes + 2)
        FrameHeader.writeServerFrame(.pong, length: payload.readableBytes, into: &frame)
        frame.writeImmutableBuffer(payload)
        pendingPong = frame
        publishQueueSize()
    }

    private func scheduleFlush(_ context: ChannelHandlerContext) {
        // Inside a read, channelReadComplete flushes once for the whole batch, and a replay's
        // batch flushes at its end; otherwise one flush at the end of this event loop tick
        // covers every push made in it.
        if isReading || replaying != nil {
            needsFlush = true
        } else if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                if let context = self.context { self.flush(context) }
            }
        }
    }

    /// Writes queued messages while the socket takes them, once resume's replay is out. Each is
    /// taken off the queue before it is written: a write can re-enter here (writability
    /// changes), and must not find the same message still first.
    func writePending(_ context: ChannelHandlerContext) {
        guard !isWritingPending, replaying == nil else { return }
        isWritingPending = true
        defer { isWritingPending = false }
        while context.channel.isWritable, !closeSent, let entry = pending.popFirst(keepReservation: true) {
            if write(reserved: entry, context: context) == .superseded {
                countOutboundDrops(pending.prepend(CollectionOfOne(entry)))
                closeSuperseded()
                break
            }
            emit(context)
        }
        publishQueueSize()
    }

    /// Takes a run of messages from the id's buffer (reserved, oldest first) into the outbound
    /// queue whole, then writes what the socket takes. Should the socket close on the way (a
    /// flush meeting a reset connection closes it there and then), the rest goes back with the
    /// queue, in order: handed over one by one, each went in front of the one before. A socket
    /// closed already gives them back to the id in one step (`requeue(older:)`).
    func send(batch entries: CircularBuffer<MessageQueue.Entry>) {
        guard !isClosed, !closeSent, let context else {
            return services.directory.requeue(older: entries, for: client)
        }
        for entry in entries { pending.takeOver(entry) }
        writePending(context)
        scheduleFlush(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if replayWaitsForWritable, context.channel.isWritable {
            replayWaitsForWritable = false
            writeReplay()
        }
        if clientPositions.ackDue, context.channel.isWritable { sendClientAck() }
        let before = queuedBytes
        emit(context)
        writePending(context)
        flush(context)
        if queuedBytes < before {
            services.directory.queueShrank(for: client)
        }
        context.fireChannelWritabilityChanged()
    }
}
