import ConduitKit
import ConduitWire
import Logging
import NIOCore
import NIOWebSocket

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
    @exclusivity(unchecked) var outbound = OutboundFrames()
    /// Messages waiting for the socket to become writable, bounded in bytes and count; whole
    /// messages, so those not written when the socket closes go back to the id's buffer and a
    /// drop never takes part of one.
    @exclusivity(unchecked) var pending: MessageQueue
    /// The pong to the latest ping, encoded, while one waits in `outbound` or the socket can't
    /// take it (`writePong`); written with the next write to the socket. Messages never wait
    /// for it.
    @exclusivity(unchecked) var pendingPong: ByteBuffer?
    @exclusivity(unchecked) var pongInOutbound = false
    /// Bytes waiting for the socket: messages and the pong.
    var queuedBytes: Int { pending.bytes + (pendingPong?.readableBytes ?? 0) }
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
    @exclusivity(unchecked) var replyParts: ReplyParts?
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
    @exclusivity(unchecked) var isWritingPending = false
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
    @exclusivity(unchecked) var isReading = false
    @exclusivity(unchecked) private var isInChannelRead = false
    @exclusivity(unchecked) var needsFlush = false
    @exclusivity(unchecked) var flushScheduled = false
    @exclusivity(unchecked) var closeSent = false
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
    var logger: Logger {
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
    func handOverUnsentMessages() {
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
}
