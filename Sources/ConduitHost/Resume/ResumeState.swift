import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

/// One resuming id's positions in both directions (SPEC §9), shared by its sockets and its
/// fallback stream one after another.
///
/// Host → client: every message gets the next position as it is written, and stays in the
/// window until the client acknowledges it; the window is bounded in bytes (the newest is
/// always kept) and its bytes come from the host-wide budget. A message of one frame is kept
/// as the bytes its writer encoded, appended to one buffer (`log`): keeping each as a
/// `Message` cost a copy of its payload (a slice of the socket's read buffer) and of its
/// header list per message, and their release on every acknowledgement, half the routed
/// echo's cost of resume.
/// Only the current writer (the id's socket or stream) may stamp: a socket that was replaced
/// and still writes is told so, and hands its messages to the new one instead.
///
/// Client → host: positions already processed are duplicates. A chunk's position counts as
/// processed only once its whole request is, so the acknowledgement stops below an open
/// chunked request and the client sends its chunks again after a reconnect.
final class ResumeState: Sendable {
    /// A window entry: plain values, so keeping and releasing one costs no reference counting.
    private struct Sent {
        let position: UInt64
        /// The encoded message's size, which the window counts.
        let bytes: Int
        /// Its bytes are taken from the host-wide budget.
        let reserved: Bool
        /// How many of its encoded bytes are the next in the log.
        let loggedBytes: Int
        let held: Held
        /// A whole message, or the last part of one: evictions end here.
        let endsMessage: Bool
    }

    /// What of a window entry is kept apart from the log.
    private enum Held {
        case nothing
        /// The message, whole, next in `held` (a part of a split message).
        case message
        /// Its payload, next in `heldPayloads`: the log has the rest (a payload written apart
        /// from its frame, alone in its buffer, is kept without a copy).
        case payload
    }
    /// An empty log larger than this is let go.
    private static let keptLogCapacity = 64 * 1024
    /// The window takes the host's budget in steps of this many bytes: one update of the
    /// budget's shared counter (which every event loop updates) per step, not per message. An
    /// id holds at most two steps it does not use, and none once its window is empty.
    private static let budgetStep = 16 * 1024

    private struct State {
        var epoch = ResumeState.newEpoch()
        var nextPosition: UInt64 = 1
        var window = CircularBuffer<Sent>(initialCapacity: 4)
        /// The encoded messages of the window that are not held, oldest first.
        var log = ByteBuffer()
        /// The messages of the window kept whole, oldest first.
        var held = CircularBuffer<Message>()
        /// The payloads of the window kept apart from the log, oldest first.
        var heldPayloads = CircularBuffer<ByteBuffer>()
        var windowBytes = 0
        /// Budget bytes reserved for the window ahead of its messages (see `budgetStep`).
        var credit = 0
        var acknowledged: UInt64 = 0
        var writer: ObjectIdentifier?
        /// Every client position up to this one is processed.
        var clientAck: UInt64 = 0
        /// Processed client positions above `clientAck` (only while a chunked request is open).
        var processedAbove = Set<UInt64>()
        var counters = ResumeCounters()
    }

    /// Bound on the positions remembered above the acknowledgement while a chunked request is
    /// open: past it the connection is closed, not the memory grown.
    static let maxProcessedAbove = 4096

    let windowLimit: Int
    private let budget: BufferBudget
    /// A pthread mutex, taken twice per resumed message: the standard library's `Mutex` (a
    /// priority-inheriting futex lock, which needs the thread's id) took 9 ns to lock and
    /// unlock here against 3 ns.
    private let state = NIOLockedValueBox(State())

    init(windowLimit: Int, budget: BufferBudget) {
        self.windowLimit = windowLimit
        self.budget = budget
    }

    // MARK: Connecting

    /// What a resuming connect is answered first: `conduit.resume` (SPEC §9), then the replay.
    struct Greeting {
        let message: Message
        let replay: [Message]
    }

    /// Makes `writer` the one that stamps from now on and answers `request`: the replay of what
    /// the client lacks, or a reset (new epoch, positions from 1) when the epoch differs or the
    /// client states a position never sent.
    func resume(_ request: ResumeRequest, writer: AnyObject) -> Greeting {
        state.withLockedValue { state in
            state.writer = ObjectIdentifier(writer)
            guard request.epoch == state.epoch, request.received < state.nextPosition else {
                if request.epoch != nil { state.counters.add(.reset, 1, metrics: budget.metrics) }
                releaseWindow(&state)
                state = State(writer: state.writer, counters: state.counters)
                return Greeting(message: greeting(state, request, replayed: 0, lost: 0, reset: true), replay: [])
            }
            acknowledge(request.received, in: &state)
            let firstHeld = state.window.first?.position ?? state.nextPosition
            let lost = Int(firstHeld - 1 - min(request.received, firstHeld - 1))
            state.counters.add(.lost, lost, metrics: budget.metrics)
            state.counters.add(.replayed, state.window.count, metrics: budget.metrics)
            return Greeting(
                message: greeting(state, request, replayed: state.window.count, lost: lost, reset: false),
                replay: replay(state))
        }
    }

    /// The window's messages, `pos` included; the logged ones decoded from a copy of the log,
    /// which stays the window's alone.
    private func replay(_ state: State) -> [Message] {
        var log = ByteBuffer(buffer: state.log)
        var held = state.held.makeIterator()
        var heldPayloads = state.heldPayloads.makeIterator()
        return state.window.map { sent in
            var encoded = log.readSlice(length: sent.loggedBytes)!
            switch sent.held {
            case .message: return held.next()!
            case .payload: encoded.writeImmutableBuffer(heldPayloads.next()!)
            case .nothing: break
            }
            // The log holds only what encoded without error.
            return try! Message(decoding: encoded)
        }
    }

    private func greeting(_ state: State, _ request: ResumeRequest, replayed: Int, lost: Int, reset: Bool) -> Message {
        var headers: Headers = [
            HeaderName.route: ResumeHeader.resumeRoute, ResumeHeader.epoch: state.epoch, "resumed": "\(request.received)",
            "replayed": "\(replayed)", "lost": "\(lost)", ResumeHeader.ack: "\(state.clientAck)",
        ]
        if reset { headers.append("reset", "true") }
        return Message(headers: headers)
    }

    /// The id's state ends (a plain connection, or the id expired): the window is released.
    func end() {
        state.withLockedValue { state in
            state.writer = nil
            releaseWindow(&state)
        }
    }

    // MARK: Host positions

    /// `message` split into the parts it goes out as, each with its position, kept whole in
    /// the window; nil when `writer` is no longer the id's (it was replaced): nothing is
    /// stamped and the message goes to the new writer.
    ///
    /// The parts of a payload alone in its buffer (a joined chunked request's echo) are kept as
    /// the slices they are, and the buffer is counted once, on the last part: the others,
    /// released before it, free nothing. Copying each part cost the 1 MiB echo about 5 % of the
    /// host's CPU. Other parts are compacted one by one.
    func stamp(splitting message: Message, writer: ObjectIdentifier) -> [Message]? {
        state.withLockedValue { state in
            guard state.writer == writer else { return nil }
            let parts = message.split()
            let sharesOneBuffer = parts.count > 1 && Self.isCompact(message.payload)
            let first = state.nextPosition
            var counted = message.payload.storageCapacity - message.payload.readableBytes
            return parts.indices.map { index in
                let stamped = Self.numbered(sharesOneBuffer ? parts[index] : Self.compacted(parts[index]), state.nextPosition)
                let isLast = index == parts.count - 1
                counted += stamped.encodedSize
                let bytes = sharesOneBuffer ? (isLast ? counted : 0) : stamped.encodedSize
                let sent = Sent(
                    position: state.nextPosition, bytes: bytes, reserved: makeRoom(bytes, keepingFrom: first, in: &state),
                    loggedBytes: 0, held: .message, endsMessage: isLast)
                keep(sent, in: &state)
                state.held.append(stamped)
                return stamped
            }
        }
    }

    /// `message` with `position` as its `pos`, in place of any `pos` or `ack` it had.
    private static func numbered(_ message: Message, _ position: UInt64) -> Message {
        var stamped = message
        stamped.headers.removeAll(ResumeHeader.position)
        stamped.headers.removeAll(ResumeHeader.ack)
        stamped.headers.append(ResumeHeader.position, String(position))
        return stamped
    }

    /// What `stamp` wrote: the frame, and the acknowledgement of client positions that went
    /// with it, if any.
    struct Stamped {
        let appended: OutboundFrames.Appended
        let ack: UInt64?
    }

    /// Encodes `message` (one frame's worth, without `pos`) into `frames` with the next
    /// position appended (`Message.AppendedField`: its header list is not copied) and keeps it
    /// in the window: its encoded bytes copied into the log, once. A large payload written
    /// apart from its frame is kept as it is when its buffer holds little else (an echo's, from
    /// a frame unmasked into a buffer of its own), else copied into the log after the rest:
    /// kept whole, the message cost an allocation and a copy of its header list, and copying a
    /// 16 KiB payload was most of resume's cost at that size. Nil, and nothing is encoded or
    /// numbered, when `writer` is no longer the id's; a message that breaks a limit throws and
    /// takes no position. Encoded under the lock, so positions go out in the order they are given.
    /// `ackAbove`, when the connection owes an acknowledgement: the last it sent; the id's `ack`
    /// goes with the message if it is above (SPEC §9 lets the host acknowledge on any message),
    /// which spares a `conduit.ack` frame.
    func stamp(_ message: Message, writer: ObjectIdentifier, into frames: inout OutboundFrames, ackAbove: UInt64? = nil) throws(WireError) -> Stamped? {
        try state.withLockedValue { state in
            Result { () throws(WireError) -> Stamped? in
                guard state.writer == writer else { return nil }
                let ack = ackAbove.flatMap { state.clientAck > $0 ? state.clientAck : nil }
                let appended = try frames.append(message, appending: Self.position(state.nextPosition, ack: ack))
                let reserved = makeRoom(appended.encodedBytes, keepingFrom: state.nextPosition, in: &state)
                frames.withBytes(in: appended.bufferedRange) { Self.append($0, to: &state.log) }
                var held = Held.nothing
                if let payload = appended.separatePayload {
                    if Self.isCompact(payload) {
                        state.heldPayloads.append(payload)
                        held = .payload
                    } else {
                        payload.withUnsafeReadableBytes { Self.append($0, to: &state.log) }
                    }
                }
                let logged = held == .payload ? appended.bufferedRange.count : appended.encodedBytes
                keep(
                    Sent(position: state.nextPosition, bytes: appended.encodedBytes, reserved: reserved, loggedBytes: logged, held: held, endsMessage: true),
                    in: &state)
                return Stamped(appended: appended, ack: ack)
            }
        }.get()
    }

    /// `pos` as the host gives it (and `ack`, when given): it takes the place of any `pos` or
    /// `ack` the message had (a handler's, or a relay's from a plain connection), which would
    /// otherwise tell the client of positions the host never sent or processed.
    private static func position(_ position: UInt64, ack: UInt64? = nil) -> Message.AppendedField {
        Message.AppendedField(ResumeHeader.position, position, alsoReplacing: ResumeHeader.ack, alsoNumber: ack)
    }

    /// Appends an encoded message to the log. When it does not fit at the end, what is left of
    /// the log first moves to its start if the acknowledged part ahead of it is at least as
    /// large (else the log grows): each byte is moved at most once for each byte released, and
    /// the log's capacity stays within about four times the most it held since it was last
    /// empty (twice, before rounding up to a power of two).
    private static func append(_ encoded: UnsafeRawBufferPointer, to log: inout ByteBuffer) {
        if log.writableBytes < encoded.count, log.readerIndex >= log.readableBytes { log.discardReadBytes() }
        log.writeBytes(encoded)
    }

    /// A message whose payload is a small slice of a large buffer (an echo of a request, a
    /// slice of the socket's read buffer) is kept as a copy: kept as it is, it would hold the
    /// whole read buffer until acknowledged, and the socket would allocate a new one per read.
    private static func compacted(_ message: Message) -> Message {
        guard !isCompact(message.payload) else { return message }
        var copy = message
        copy.payload = ByteBuffer(buffer: message.payload)
        return copy
    }

    /// Whether keeping `payload` holds little more memory than its own bytes.
    private static func isCompact(_ payload: ByteBuffer) -> Bool {
        payload.storageCapacity <= 2 * payload.readableBytes + 4096
    }

    /// Makes room for `bytes` more of the message that starts at position `first`: past the
    /// bound (its own, or the host's budget) the oldest messages go, whole (every part of one
    /// still held), counted as evicted (a client that had not received them is told on its next
    /// connect). The newest message is kept whole even alone over the bound; true when its
    /// bytes are reserved (the budget had them).
    private func makeRoom(_ bytes: Int, keepingFrom first: UInt64, in state: inout State) -> Bool {
        while true {
            if state.windowBytes + bytes <= windowLimit, takeBudget(bytes, in: &state) { return true }
            guard let oldest = state.window.first, oldest.position < first else { return takeBudget(bytes, in: &state) }
            let end = state.window.firstIndex(where: \.endsMessage) ?? state.window.index(before: state.window.endIndex)
            let count = state.window.distance(from: state.window.startIndex, to: end) + 1
            releaseOldest(count, in: &state)
            state.counters.add(.evicted, count, metrics: budget.metrics)
        }
    }

    /// Takes `bytes` from the window's credit, topped up from the host's budget by a step, or
    /// by just what is missing when a step no longer fits; false when not even that does.
    private func takeBudget(_ bytes: Int, in state: inout State) -> Bool {
        if state.credit < bytes {
            let missing = bytes - state.credit
            let step = max(missing, Self.budgetStep)
            if budget.reserve(step) {
                state.credit += step
            } else if step > missing, budget.reserve(missing) {
                state.credit += missing
            } else {
                return false
            }
        }
        state.credit -= bytes
        return true
    }

    private func keep(_ sent: Sent, in state: inout State) {
        state.window.append(sent)
        state.nextPosition += 1
        state.windowBytes += sent.bytes
    }

    /// The client holds every position up to `position`: those leave the window.
    func acknowledge(_ position: UInt64) {
        state.withLockedValue { acknowledge(position, in: &$0) }
    }

    private func acknowledge(_ position: UInt64, in state: inout State) {
        let position = min(position, state.nextPosition - 1)
        guard position > state.acknowledged else { return }
        state.acknowledged = position
        // The window holds consecutive positions.
        guard let first = state.window.first?.position, position >= first else { return }
        releaseOldest(Int(position - first) + 1, in: &state)
    }

    /// Takes the window's oldest `count` entries out; their bytes go back to the window's
    /// credit (past it, to the budget) and leave the log, in one step each.
    private func releaseOldest(_ count: Int, in state: inout State) {
        var reservedBytes = 0
        var loggedBytes = 0
        for _ in 0..<count {
            let sent = state.window.removeFirst()
            state.windowBytes -= sent.bytes
            if sent.reserved { reservedBytes += sent.bytes }
            loggedBytes += sent.loggedBytes
            switch sent.held {
            case .message: state.held.removeFirst()
            case .payload: state.heldPayloads.removeFirst()
            case .nothing: break
            }
        }
        state.credit += reservedBytes
        // An emptied window gives all its credit back; a busy one keeps a step of it.
        if state.window.isEmpty {
            budget.release(state.credit)
            state.credit = 0
        } else if state.credit > 2 * Self.budgetStep {
            budget.release(state.credit - Self.budgetStep)
            state.credit = Self.budgetStep
        }
        state.log.moveReaderIndex(forwardBy: loggedBytes)
        guard state.log.readableBytes == 0 else { return }
        // All acknowledged: an idle id keeps a small log only.
        if state.log.capacity > Self.keptLogCapacity { state.log = ByteBuffer() } else { state.log.clear() }
    }

    private func releaseWindow(_ state: inout State) {
        releaseOldest(state.window.count, in: &state)
        state.log = ByteBuffer()
    }

    // MARK: Client positions

    enum ClientPosition {
        /// Processed already: the message is dropped (counted).
        case duplicate
        case admitted
        /// Too many positions wait above an open chunked request: the connection is closed.
        case tooManyAbove
    }

    /// Checks a client position and, unless it is a duplicate, records it, in one step.
    /// `isChunk`: a chunk of a request still open, not processed until the request is (its
    /// position is not recorded; the caller holds it as `openFrom`). `openFrom`: the first
    /// position of the chunked request open on the connection; the acknowledgement stays
    /// below it (positions increase, so everything processed meanwhile is above it).
    func admit(_ position: UInt64, isChunk: Bool, openFrom: UInt64?) -> ClientPosition {
        state.withLockedValue { state in
            // Nearly always: a whole request, no chunked one open anywhere for the id.
            if !isChunk, openFrom == nil, state.processedAbove.isEmpty {
                guard position > state.clientAck else { return duplicate(in: &state) }
                state.clientAck = position
                return .admitted
            }
            guard position > state.clientAck, !state.processedAbove.contains(position) else {
                return duplicate(in: &state)
            }
            if isChunk { return .admitted }
            guard openFrom != nil else {
                state.clientAck = max(position, state.processedAbove.max() ?? 0)
                if !state.processedAbove.isEmpty { state.processedAbove.removeAll() }
                return .admitted
            }
            state.processedAbove.insert(position)
            return state.processedAbove.count <= Self.maxProcessedAbove ? .admitted : .tooManyAbove
        }
    }

    private func duplicate(in state: inout State) -> ClientPosition {
        state.counters.add(.duplicate, 1, metrics: budget.metrics)
        return .duplicate
    }

    /// The last client position the host acknowledges.
    var clientAck: UInt64 { state.withLockedValue { $0.clientAck } }

    // MARK: Diagnostics

    var snapshot: ResumeSnapshot {
        state.withLockedValue { state in
            ResumeSnapshot(
                epoch: state.epoch, sent: state.nextPosition - 1, acknowledged: state.acknowledged,
                windowMessages: state.window.count, windowBytes: state.windowBytes, clientAcknowledged: state.clientAck,
                replayed: state.counters[.replayed], duplicates: state.counters[.duplicate], lost: state.counters[.lost],
                evicted: state.counters[.evicted], resets: state.counters[.reset])
        }
    }

    private static func newEpoch() -> String {
        String(UInt64.random(in: 1...UInt64.max), radix: 36)
    }
}

/// What resume does that diagnostics and metrics count.
enum ResumeEvent: String, CaseIterable, Sendable {
    /// A message sent again after a reconnect.
    case replayed
    /// A client message dropped as already processed.
    case duplicate
    /// A position a client asked for that the window no longer held.
    case lost
    /// A message released unacknowledged because the window was full.
    case evicted
    /// A reconnect that stated an epoch the host no longer held.
    case reset
}

struct ResumeCounters: Sendable {
    private var counts: [ResumeEvent: Int] = [:]

    subscript(event: ResumeEvent) -> Int { counts[event, default: 0] }

    mutating func add(_ event: ResumeEvent, _ count: Int, metrics: HostMetrics) {
        guard count > 0 else { return }
        counts[event, default: 0] += count
        metrics.resume(event, count: count)
    }
}
