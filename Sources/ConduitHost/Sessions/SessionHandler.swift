import ConduitKit
import ConduitWire
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// A connection's WebSocket life on its event loop, from the socket's bytes: frames, control
/// frames, the close handshake, the bounded outbound queue and one write per read batch.
/// Binary messages go to `dispatch`.
///
/// Its state is the event loop's alone (a channel handler runs only there), so its stored
/// properties skip the run-time exclusivity check: each access paid one (about 70 instructions
/// with the runtime's access set), thirteen a message on a plain connection and seventeen on a
/// resuming one, a tenth of the routed 64-byte echo's instructions (BENCHMARKS.md). Overlapping
/// accesses come only from re-entrant calls on the same loop, which the code orders itself
/// (`isWritingPending`, writes handed to the channel after the id's lock).
final class SessionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let client: ClientID
    let window: String
    let services: SessionDependencies
    private let hostLogger: Logger
    /// Traffic not yet added to the host's counters (they are shared by every event loop).
    @exclusivity(unchecked) var traffic = TrafficTally()
    /// The last message's header list, reused for the next one (see `Message(decoding:reusing:)`).
    @exclusivity(unchecked) var decodedHeaders = Headers()
    /// Joins a large request's chunks (SPEC §1).
    @exclusivity(unchecked) var assembler: ChunkAssembler
    /// A chunked request one of whose parts was refused, until the message that completes it.
    @exclusivity(unchecked) var refusedRequest: RefusedRequest?
    @exclusivity(unchecked) private(set) var session: Session?

    @exclusivity(unchecked) private(set) var context: ChannelHandlerContext?
    @exclusivity(unchecked) private var reader: ClientFrameReader
    /// Frames made in this tick, written together.
    @exclusivity(unchecked) private var outbound = OutboundFrames()
    /// Messages waiting for the socket to become writable, bounded in bytes and count; whole
    /// messages, so those not written when the socket closes go back to the id's buffer and a
    /// drop never takes part of one.
    @exclusivity(unchecked) private var pending: MessageQueue
    /// The pong to the latest ping, encoded, while one waits in `outbound` or the socket can't
    /// take it (`writePong`); written with the next write to the socket. Messages never wait
    /// for it.
    @exclusivity(unchecked) private var pendingPong: ByteBuffer?
    @exclusivity(unchecked) private var pongInOutbound = false
    /// Bytes waiting for the socket: messages and the pong.
    private var queuedBytes: Int { pending.bytes + (pendingPong?.readableBytes ?? 0) }
    /// Bytes of the chunk queue taken from the host's budget (the incoming half).
    @exclusivity(unchecked) var chunkReservation = BudgetReservation()
    /// Bytes of an incoming message not yet complete (a frame split across reads, fragments
    /// joined so far) taken from the host's budget: 500 connections each part way through a
    /// 1 MB frame held 514 MB under a budget of 256 MiB.
    @exclusivity(unchecked) private var unfinishedReservation = BudgetReservation()
    /// Up to about a read's worth, a message still arriving may draw on the whole budget, not
    /// only the incoming half: a request of that size split by TCP is then refused whole once
    /// complete when the half is full (as it is when it comes in one read), not its
    /// connection closed because of where the split fell.
    static let unfinishedFromWholeBudget = 64 * 1024
    /// When the message still arriving began (nil: none is): it must be whole within
    /// `messageArrivalTimeoutSeconds` (`watchArrival`), checked by `arrivalCheck`.
    @exclusivity(unchecked) private var arrivalBegan: NIODeadline?
    @exclusivity(unchecked) private var arrivalCheck: Scheduled<Void>?
    /// A data message was completed by the read in progress: what is left unfinished after it
    /// is a new message, with a time limit of its own.
    @exclusivity(unchecked) private var completedAMessage = false
    /// Handlers' replies in parts, joined until their last (`sendReply`). They outlive the
    /// socket: a reply made after it closed goes to the id whole, as any other.
    @exclusivity(unchecked) private var replyParts: ReplyParts?
    /// This connection's requests a `cancel: <token>` can stop (on a resuming one, with those
    /// of its id's earlier sockets: `ResumeState.cancel(_:besides:)`).
    let cancellations = CancellationRegistry()
    /// This connection's bound on requests answered from a task, and their deadline.
    let requestLimits: RequestLimits
    /// What the connect asked of resume (SPEC §9), and the id's state once attached; nil on a
    /// plain connection, which then pays nothing for it.
    let resumeRequest: ResumeRequest?
    @exclusivity(unchecked) private(set) var resume: ResumeState?
    /// `resume` for the per-message paths, used without reference counting: set with it, once
    /// (`attach(_:)`), and kept alive by it for the handler's life. A retain and a release of
    /// the shared state per message showed as a third of resume's cost in its profile; same-run
    /// A/Bs of CPU time gave 0.01 to 0.07 µs a message (BENCHMARKS.md).
    @exclusivity(unchecked) private(set) var attachedResume: Unmanaged<ResumeState>?
    /// The session as the id's writer (`ResumeState.stamp`), compared without retaining it.
    @exclusivity(unchecked) private(set) var writerID: ObjectIdentifier?
    /// The client positions this connection holds and acknowledges (SessionHandler+Resume).
    @exclusivity(unchecked) var clientPositions = ClientPositions()
    /// `writePending` is running: a writability change inside one of its writes must not start
    /// another (it would write the next message between a frame's header and its payload).
    @exclusivity(unchecked) private var isWritingPending = false
    /// The last message written was a part with `more`: nothing else may follow until its last
    /// part (SPEC §1: clients join parts until one without it). A part's write can re-enter
    /// here (past the high-water mark, the flush of the writability change makes the channel
    /// writable again), and a replay's batch can end between parts: an acknowledgement due
    /// then waits, owed. (Queued messages already wait: `writePending` does not re-enter.)
    @exclusivity(unchecked) var partsOpen = false
    /// A frame's header is written and its payload (written apart) not yet: the same
    /// re-entry must write nothing, not even a pong (a control frame may go between two
    /// messages, never inside a frame).
    @exclusivity(unchecked) var frameOpen = false
    /// Resume's replay still to write (`writeReplay`); live messages wait in `pending` until it is out.
    @exclusivity(unchecked) var replaying: ResumeState.Replay?
    /// The replay waits for the socket to take more (`channelWritabilityChanged` goes on with it).
    @exclusivity(unchecked) var replayWaitsForWritable = false
    @exclusivity(unchecked) private var isReading = false
    @exclusivity(unchecked) private var isInChannelRead = false
    @exclusivity(unchecked) private var needsFlush = false
    @exclusivity(unchecked) private var flushScheduled = false
    @exclusivity(unchecked) private(set) var closeSent = false
    @exclusivity(unchecked) private(set) var isClosed = false

    /// The connection's place in the order the listener accepted them (`ArrivalOrder`).
    let arrival: UInt64

    init(client: ClientID, window: String, resume: ResumeRequest?, arrival: UInt64 = 0, services: SessionDependencies, logger: Logger) {
        self.client = client
        self.window = window
        self.arrival = arrival
        self.resumeRequest = resume
        self.services = services
        self.hostLogger = logger
        self.assembler = ChunkAssembler(limit: services.settings.chunkQueueBytes)
        self.reader = ClientFrameReader(maxMessageBytes: services.settings.maxMessageBytes)
        self.requestLimits = .init(
            inFlight: InFlightLimit(limit: services.settings.maxRequestsInFlight, budget: services.directory.budget.forRequestsInFlight),
            timeout: .seconds(services.settings.requestTimeoutSeconds))
        self.pending = MessageQueue(
            byteLimit: services.settings.outboundQueueBytes, countLimit: services.settings.outboundQueueMessages,
            budget: services.directory.budget)
    }

    /// Parts of a reply whose last never came keep their bytes of the budget until nothing can
    /// send it any more: no responder holds this connection.
    deinit {
        replyParts?.releaseAll(in: services.directory.budget)
    }

    /// The host's logger with this client's id: made when something is logged, since a
    /// metadata dictionary kept per connection would cost each idle one a few hundred bytes.
    private var logger: Logger {
        var logger = hostLogger
        logger[metadataKey: "client.id"] = "\(client)"
        return logger
    }

    // MARK: Life

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let session = Session(client: client, window: window, resumeRequest: resumeRequest, arrival: arrival, channel: context.channel, cancellations: cancellations, handler: self)
        self.session = session
        writerID = ObjectIdentifier(session)
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
        writerID = nil
        self.context = nil
    }

    /// Frames of a resuming connection with this much payload are unmasked into buffers of their
    /// own. Below it, copying the echoed payload into the window's log costs less than a buffer
    /// a frame. Timed (`Benchmarks/ab.sh`, 2026-12-03): with buffers of their own, resume cost
    /// the 1 KiB echo +30 % host CPU a message, copied +14 %; the 4 KiB echo cost 8 % less host
    /// CPU with buffers of their own than copied.
    static let ownPayloadBuffersFrom = 2 * OutboundFrames.gatherThreshold

    /// The id's resume state, once per connection (the directory attaches a session once).
    func attach(_ state: ResumeState) {
        precondition(resume == nil, "an id's resume state attaches once per connection")
        resume = state
        attachedResume = Unmanaged.passUnretained(state)
        // The window keeps an echoed payload written apart from its frame without copying it
        // when its buffer holds nothing else (`ResumeState.stamp`).
        reader.ownBuffersFrom = Self.ownPayloadBuffersFrom
    }

    private func finish() {
        guard !isClosed, session != nil else { return }
        isClosed = true
        services.metrics.connectionClosed()
        services.metrics.record(&traffic)
        assembler.reset()
        syncChunkReservation()
        unfinishedReservation.releaseAll(in: services.directory.budget)
        arrivalCheck?.cancel()
        clientPositions.stop()
        handOverUnsentMessages()
        logger.debug("client disconnected")
    }

    /// Once closing, the socket takes no more messages: the id's later pushes go to its buffer,
    /// and what waited here goes back to the front of that buffer, in order.
    private func handOverUnsentMessages() {
        guard let session else { return }
        let unsent = pending.takeAll()
        pendingPong = nil
        publishQueueSize()
        services.directory.detach(session, unsent: unsent)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A write that fails (the peer reset the connection) makes NIO read what the socket
        // still holds, inside that write, then close. Such a read inside this one's replies
        // was processed ahead of this one's remaining frames, which the close then dropped,
        // and its client positions acknowledged over theirs. It is left unprocessed and
        // unacknowledged, for a resuming client to send again with the rest.
        guard !isInChannelRead else { return }
        isInChannelRead = true
        defer { isInChannelRead = false }
        isReading = true
        reader.read(unwrapInboundIn(data), allocator: context.channel.allocator)
        for frame in reader.frames where !isClosed {
            receive(frame, context: context)
        }
        reader.releaseLargeBuffer()
        if let violation = reader.violation { return fail(violation) }
        holdUnfinishedMessage()
    }

    /// Starts the time limit of a message left unfinished by a read, if it began in that read;
    /// ends it once none is. One check is scheduled at a time, moved on by `checkArrival` when
    /// the message it watched was completed and another began: a read that ends mid-frame (a
    /// pipelining client's, often) costs a clock read, not a timer.
    private func watchArrival(unfinished: Int, context: ChannelHandlerContext) {
        defer { completedAMessage = false }
        guard unfinished > 0 else {
            arrivalBegan = nil
            return
        }
        guard arrivalBegan == nil || completedAMessage else { return }
        let began = NIODeadline.now()
        arrivalBegan = began
        if arrivalCheck == nil { scheduleArrivalCheck(at: began + arrivalTimeout, context: context) }
    }

    private var arrivalTimeout: TimeAmount { .fractionalSeconds(services.settings.messageArrivalTimeoutSeconds) }

    private func scheduleArrivalCheck(at deadline: NIODeadline, context: ChannelHandlerContext) {
        arrivalCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { self.checkArrival() }
    }

    /// A message still arriving past its time limit fails its connection (1008), which gives
    /// back its bytes of the budget; else the check waits for the current message's limit.
    private func checkArrival() {
        arrivalCheck = nil
        guard let began = arrivalBegan, let context, !closeSent else { return }
        let deadline = began + arrivalTimeout
        guard deadline <= .now() else { return scheduleArrivalCheck(at: deadline, context: context) }
        let seconds = services.settings.messageArrivalTimeoutSeconds
        let limit = seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)"
        fail(FrameViolation(.policyViolation, "a message must arrive whole within \(limit) s (limits.messageArrivalTimeoutSeconds)"))
    }

    /// Takes from the budget what the reader holds of a message still arriving; when the
    /// budget can't cover it the connection is closed (1008), as a full queue's is. Also once
    /// the host's close is sent: it reads on until the client's close, and a frame arriving
    /// meanwhile was carried outside the budget; past it, the connection is simply closed.
    private func holdUnfinishedMessage() {
        let budget = services.directory.budget
        guard !isClosed else { return unfinishedReservation.releaseAll(in: budget) }
        let unfinished = reader.unfinishedBytes
        let share: BufferBudget.Share = unfinished <= Self.unfinishedFromWholeBudget ? .whole : .half
        guard unfinishedReservation.match(unfinished, in: budget, share: share) else {
            budget.dropped(.hostBudget)
            guard !closeSent else { return context?.close(promise: nil) ?? () }
            return fail(FrameViolation(.policyViolation, "the host's buffer budget is full: this message can't be held as it arrives"))
        }
        if let context { watchArrival(unfinished: unfinished, context: context) }
    }

    private func receive(_ frame: ClientFrameReader.Frame, context: ChannelHandlerContext) {
        // Once our close is sent only the peer's close matters (RFC 6455 §5.5.1).
        guard !closeSent || frame.opcode == .connectionClose else { return }
        switch frame.opcode {
        case .ping:
            writePong(reader.payload(of: frame))
        case .pong:
            break
        case .connectionClose:
            receivedClose(reader.payload(of: frame))
        case .text:
            close(code: .unacceptableData, reason: "text frames are not part of the Conduit protocol")
        default:
            if let message = reader.message(completedBy: frame, allocator: context.channel.allocator) {
                // Its bytes held while it arrived are now the message's: given back before
                // it takes its own, so they are never counted twice.
                unfinishedReservation.releaseAll(in: services.directory.budget)
                completedAMessage = true
                dispatch(message.payload)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // An acknowledgement no reply of this read carried goes alone, in this read's flush.
        if clientPositions.ackDue { sendClientAck() }
        isReading = false
        if !flushIfNeeded(context) { services.metrics.record(&traffic) }
        context.fireChannelReadComplete()
    }

    /// Flushes what a read or a replay's batch wrote, if anything; whether it did.
    @discardableResult
    func flushIfNeeded(_ context: ChannelHandlerContext) -> Bool {
        guard needsFlush else { return false }
        needsFlush = false
        flush(context)
        return true
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error.type": "\(type(of: error))", "error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Outbound

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

    private func publishQueueSize() {
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

    private func flush(_ context: ChannelHandlerContext) {
        emit(context)
        context.flush()
        services.metrics.record(&traffic)
    }

    /// Answers a ping. One pong goes with each write to the socket, and the pong to the latest
    /// ping waits for the next, as RFC 6455 §5.5.3 allows: a peer that sent pings without
    /// reading the pongs had 8 MiB of them queued per connection outside the host's budget,
    /// and a read's worth (up to 1 MB) more in the channel (561 MB for 100 such peers).
    private func writePong(_ payload: ByteBuffer) {
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

    // MARK: Close handshake

    /// Sends a close frame and closes the connection once the peer answers (or after a timeout).
    func close(code: WebSocketErrorCode, reason: String) {
        guard let context, !closeSent else { return }
        closeSent = true
        handOverUnsentMessages()
        writeClose(code: code, reason: reason, context: context)
    }

    /// Fails the connection after a protocol breach (RFC 6455 §7.1.7): the close frame, then
    /// the TCP connection, since nothing more the client sends can be trusted.
    private func fail(_ violation: FrameViolation) {
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

    private func receivedClose(_ payload: ByteBuffer) {
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
