import ConduitKit
import ConduitWire
import Synchronization
import NIOCore

/// One resuming id's positions in both directions (SPEC §9), shared by its sockets and its
/// fallback stream one after another.
///
/// Host → client: every message gets the next position as it is written, and stays in the
/// window until the client acknowledges it; the window is bounded in encoded bytes (the newest
/// is always kept), and the memory it takes comes from the host-wide budget (`memory(of:)`:
/// charged by encoded bytes alone, a window of tiny messages took six times its charge).
/// A message of one frame is kept as the bytes its writer encoded, appended to one buffer
/// (`log`): keeping each as a `Message` cost a copy of its payload (a slice of the socket's
/// read buffer) and of its header list per message, and their release on every
/// acknowledgement, half the routed echo's cost of resume.
/// Only the current writer (the id's socket or stream) may stamp: a socket that was replaced
/// and still writes is told so, and hands its messages to the new one instead.
///
/// Client → host: positions already processed are duplicates. A chunk's position counts as
/// processed only once its whole request is, so the acknowledgement stops below an open
/// chunked request and the client sends its chunks again after a reconnect.
final class ResumeState: Sendable {
    /// A window entry: plain values, so keeping and releasing one costs no reference counting.
    /// Sizes are 32-bit (no message reaches 4 GiB): every message in the window takes an
    /// entry, and the budget is charged for it. Its position is the window's count from the
    /// next one (the window holds consecutive positions).
    fileprivate struct Sent {
        /// The encoded message's size, which the window counts.
        let bytes: UInt32
        /// Where its bytes in the log end, counted from the epoch's start (its part of the log
        /// follows the previous entry's end): acknowledged entries leave the log up to the last
        /// one's end without a sum over them.
        let loggedEnd: Int
        /// The memory it holds outside the log (`held`).
        let heldBytes: UInt32
        let held: Held
        /// A whole message, or the last part of one: evictions end here.
        let endsMessage: Bool
    }

    /// What of a window entry is kept apart from the log.
    fileprivate enum Held {
        case nothing
        /// The message, whole, next in `held` (a part of a split message).
        case message
        /// Its payload, next in `heldPayloads`: the log has the rest (a payload written apart
        /// from its frame, alone in its buffer, is kept without a copy).
        case payload
    }
    /// An empty log larger than this is let go.
    private static let keptLogCapacity = 64 * 1024
    /// So are empty lists of more entries than this.
    private static let keptListCapacity = 1024
    /// The window takes the host's budget in steps of this many bytes: one update of the
    /// budget's shared counter (which every event loop updates) per step, not per message. An
    /// id holds at most two steps it does not use, and none once its window is empty.
    private static let budgetStep = 16 * 1024

    fileprivate struct State {
        var epoch = ResumeState.newEpoch()
        /// `pos` as the next message gets it: counted up as messages are kept (`increment`).
        var nextField = ResumeState.position(1)
        var nextPosition: UInt64 { nextField.number }
        var window = ValueRing<Sent>(minimumCapacity: 4)
        /// The position of the window's oldest message (the next position when it is empty).
        var firstPosition: UInt64 { nextPosition - UInt64(window.count) }
        /// Where the next message's bytes in the log start, counted from the epoch's start.
        var loggedEnd: Int { released.logged + log.readableBytes }
        /// The encoded messages of the window that are not held, oldest first.
        var log = ResumeLog()
        /// The messages of the window kept whole, oldest first.
        var held = CircularBuffer<Message>(initialCapacity: 1)
        /// The payloads of the window kept apart from the log, oldest first.
        var heldPayloads = CircularBuffer<ByteBuffer>(initialCapacity: 1)
        var windowBytes = 0
        /// Memory of the window's messages outside the log.
        var heldBytes = 0
        /// Taken from the host's budget: the window's memory (`memory(of:)`), and up to two
        /// steps ahead of it while the window holds messages.
        var charged = 0
        /// The charge covers the window's memory (it does not when the newest message was kept
        /// over the bound): a message that grows no storage then needs no charging.
        var memoryIsCharged = false
        var acknowledged: UInt64 = 0
        var writer: ObjectIdentifier?
        /// Every client position up to this one is processed.
        var clientAck: UInt64 = 0
        /// Processed client positions above `clientAck` (only while a chunked request is open),
        /// and the memory their set takes, which the window's charge covers: it outlives the
        /// connection (a resume drops the positions sent again), and uncharged, 4,096 of them an
        /// id held 64 KiB each outside the budget.
        var processedAbove = Set<UInt64>()
        var processedAboveMemory = 0
        /// `end()` released it: nothing is recorded or charged any more (a socket on another
        /// event loop finishes the read it is in on it, and what it charged was never given back).
        var ended = false
        var counters = ResumeCounters()
        /// What left the window since the epoch began: where its oldest message is, counted
        /// from the epoch's start (a replay's place stays valid while acknowledgements release).
        var released = WindowPlace()
        /// The last message to leave the window left only in part (the client acknowledged
        /// the first parts of one): the window begins inside it.
        var releasedInsideAMessage = false
    }

    /// A place in the window's storage, counted from the epoch's start: bytes of the log, and
    /// entries of the lists of held messages and held payloads.
    fileprivate struct WindowPlace {
        var logged = 0
        var held = 0
        var heldPayloads = 0
    }

    /// Bound on the positions remembered above the acknowledgement while a chunked request is
    /// open: past it the connection is closed, not the memory grown.
    static let maxProcessedAbove = 4096

    let windowLimit: Int
    private let budget: BufferBudget
    /// Taken twice per resumed message. The standard library's `Mutex` (Swift 6.3: the thread's
    /// id cached, one atomic exchange each way, inlined) costs 5.8 ns to lock and unlock on this
    /// machine against 7.2-9.2 ns for a pthread mutex (`NIOLockedValueBox`), and 94 fewer
    /// instructions a message of the resuming routed echo.
    private let state = Mutex(State())

    init(windowLimit: Int, budget: BufferBudget) {
        self.windowLimit = windowLimit
        self.budget = budget
    }

    // MARK: Connecting

    /// What a resuming connect is answered first: `conduit.resume` (SPEC §9), then the replay.
    struct Greeting {
        let message: Message
        let replay: Replay
        /// What a reset sends again as new traffic, ahead of everything else for the id
        /// (`carriedOver(in:)`), its bytes taken from the budget.
        var carried = CircularBuffer<MessageQueue.Entry>()
    }

    /// What a resume sends again: the window's messages from the first the client lacks to the
    /// last sent before it resumed, `pos` included, read from the window a batch at a time (its
    /// bytes copied under the id's lock) and decoded as each is written. Copied whole at the
    /// resume, the window's log was held twice until the replay was out, once outside the
    /// budget; decoded all at once under the lock and written in one go, 20,000 small messages
    /// kept the event loop from reading any socket for 557 ms (debug build).
    struct Replay {
        /// How many messages it sends, from the start.
        let count: Int
        fileprivate let resume: ResumeState
        fileprivate let epoch: String
        fileprivate let writer: ObjectIdentifier?
        /// The next position it sends, and where that message is in the window's storage.
        fileprivate var position: UInt64
        fileprivate var place: WindowPlace
        fileprivate let through: UInt64
        /// Its last batch ended with a part that has more to follow.
        fileprivate var insideAMessage = false
        /// The rest of a message it had begun left the window (the client acknowledged
        /// positions not sent again): that message can't be finished, and nothing else may
        /// follow its part with more to come (SPEC §3), so the receiver must end.
        fileprivate(set) var isCutInsideAMessage = false

        /// At most this many messages a batch, and about this many encoded bytes (a message of
        /// more goes alone). Counted in the log's bytes alone, parts and payloads kept apart
        /// from it counted nothing: one batch of a large message's parts was 256 of them, 16 MiB
        /// written at once whatever the socket took, held by a client that read nothing.
        static let batchBound = (messages: 256, bytes: 64 << 10)

        /// The next batch: nil once all is sent, or when the window is no longer the one it
        /// replays (a reset; the id taken by another socket or stream; the id ended), or when
        /// it is cut inside a message (`isCutInsideAMessage`).
        mutating func nextBatch() -> ReplayBatch? {
            resume.nextBatch(of: &self)
        }
    }

    /// Messages of a replay: their bytes, copied from the log, and what their entries held
    /// apart from it; each is decoded as it is taken.
    struct ReplayBatch: Sequence {
        fileprivate let log: ByteBuffer
        /// Where `log` starts in the window's log, counted from the epoch's start.
        fileprivate let loggedFrom: Int
        fileprivate let entries: [Sent]
        fileprivate let held: [Message]
        fileprivate let heldPayloads: [ByteBuffer]

        var count: Int { entries.count }
        /// Its last message is a part with more to follow (in the next batch).
        var endsInsideAMessage: Bool { entries.last.map { !$0.endsMessage } ?? false }

        func makeIterator() -> Iterator { Iterator(self) }

        struct Iterator: IteratorProtocol {
            private var log: ByteBuffer
            /// Where the next entry's bytes start (the last one's end).
            private var loggedFrom: Int
            private var entries: IndexingIterator<[Sent]>
            private var held: IndexingIterator<[Message]>
            private var heldPayloads: IndexingIterator<[ByteBuffer]>

            fileprivate init(_ batch: ReplayBatch) {
                log = batch.log
                loggedFrom = batch.loggedFrom
                entries = batch.entries.makeIterator()
                held = batch.held.makeIterator()
                heldPayloads = batch.heldPayloads.makeIterator()
            }

            mutating func next() -> Message? {
                guard let sent = entries.next() else { return nil }
                var encoded = log.readSlice(length: sent.loggedEnd - loggedFrom)!
                loggedFrom = sent.loggedEnd
                switch sent.held {
                case .message: return held.next()!
                case .payload: encoded.writeImmutableBuffer(heldPayloads.next()!)
                case .nothing: break
                }
                // The log holds only what encoded without error.
                return try! Message(decoding: encoded)
            }
        }
    }

    /// Makes `writer` the one that stamps from now on and answers `request`: the replay of what
    /// the client lacks, or a reset (new epoch, positions from 1) when the epoch differs or the
    /// client states a position never sent.
    func resume(_ request: ResumeRequest, writer: AnyObject) -> Greeting {
        state.withLock { state in
            state.writer = ObjectIdentifier(writer)
            guard request.epoch == state.epoch, request.received < state.nextPosition else {
                if request.epoch != nil { state.counters.add(.reset, 1, metrics: budget.metrics) }
                // A client of another epoch (or none) never read this one's greeting, so none
                // of its messages: released, they were lost without a word (a first socket cut
                // before its greeting was read took with it what the id had waiting).
                let carried = request.epoch != state.epoch ? carriedOver(in: &state) : []
                releaseWindow(&state)
                state = State(writer: state.writer, counters: state.counters)
                var greeting = Greeting(message: greeting(state, request, replayed: 0, lost: 0, reset: true), replay: replay(of: state))
                greeting.carried = reserved(carried, in: &state)
                return greeting
            }
            acknowledge(request.received, in: &state)
            // The client lacks the first parts of the message the window begins inside (it
            // resumes below its acknowledgement): the rest of it goes too, lost with them, or
            // the replay began inside a message and the client joined its tail to nothing.
            if state.releasedInsideAMessage, request.received < state.firstPosition - 1 {
                releaseOldest(Self.partsLeft(of: state), in: &state)
            }
            let firstHeld = state.firstPosition
            let lost = Int(firstHeld - 1 - min(request.received, firstHeld - 1))
            state.counters.add(.lost, lost, metrics: budget.metrics)
            return Greeting(
                message: greeting(state, request, replayed: state.window.count, lost: lost, reset: false),
                replay: replay(of: state))
        }
    }

    /// The replay of what the window holds now.
    private func replay(of state: State) -> Replay {
        Replay(
            count: state.window.count, resume: self, epoch: state.epoch, writer: state.writer,
            position: state.firstPosition, place: state.released, through: state.nextPosition - 1)
    }

    /// The next batch of `replay`, its place moved past it.
    fileprivate func nextBatch(of replay: inout Replay) -> ReplayBatch? {
        state.withLock { state in
            guard replay.position <= replay.through, state.epoch == replay.epoch, state.writer == replay.writer,
                  let batch = batch(of: &replay, in: &state)
            else { return nil }
            // Counted as they go out: a replay cut short counts what it sent.
            state.counters.add(.replayed, batch.count, metrics: budget.metrics)
            return batch
        }
    }

    /// The parts of the message the window begins inside that it still holds.
    private static func partsLeft(of state: State) -> Int {
        var count = 0
        while count < state.window.count, !state.window[count].endsMessage { count += 1 }
        return min(count + 1, state.window.count)
    }

    /// The window's messages from the first that begins a message (the client may have
    /// acknowledged the first parts of one), for a reset to send again with new positions:
    /// whole, a message's parts joined again, so that each is numbered, kept and dropped as
    /// the one message it is (carried as parts, each was kept as a message of its own, and the
    /// window could drop some parts of one and replay the rest).
    private func carriedOver(in state: inout State) -> [Message] {
        let skipped = state.releasedInsideAMessage ? Self.partsLeft(of: state) : 0
        var parts: [Message] = []
        var replay = replay(of: state)
        while let batch = batch(of: &replay, in: &state) { parts.append(contentsOf: batch) }
        var messages: [Message] = []
        var payloads: [ByteBuffer] = []
        for part in parts.dropFirst(skipped) {
            payloads.append(part.payload)
            guard !part.headers.hasMore else { continue }
            var joined = ByteBuffer()
            joined.reserveCapacity(payloads.reduce(0) { $0 + $1.readableBytes })
            for payload in payloads { joined.writeImmutableBuffer(payload) }
            messages.append(Message(headers: part.headers, payload: joined))
            payloads = []
        }
        return messages
    }

    /// `carried` as queue entries whose bytes the budget gives, in order, without their old
    /// `pos` (a plain socket that takes the id first must see none); what the budget has no room
    /// for is dropped, counted.
    private func reserved(_ carried: [Message], in state: inout State) -> CircularBuffer<MessageQueue.Entry> {
        var entries = CircularBuffer<MessageQueue.Entry>(initialCapacity: carried.count)
        for var message in carried {
            message.headers.removeAll(ResumeHeader.position)
            // Sent once already, each may belong to a byte stream: none is evicted for room.
            let entry = MessageQueue.Entry(message, delivery: .reliable).compacted
            guard budget.reserve(entry.bytes) else {
                budget.dropped(.hostBudget, count: carried.count - entries.count)
                break
            }
            entries.append(entry)
        }
        state.counters.add(.carried, entries.count, metrics: budget.metrics)
        return entries
    }

    /// The next batch of `replay` from `state`, its place moved past it.
    private func batch(of replay: inout Replay, in state: inout State) -> ReplayBatch? {
        let first = state.firstPosition
        // A client may acknowledge positions not yet sent again: they left the window.
        if state.window.isEmpty || replay.position < first {
            guard !replay.insideAMessage else {
                replay.isCutInsideAMessage = true
                return nil
            }
            guard !state.window.isEmpty else { return nil }
            replay.position = first
            replay.place = state.released
        }
        var entries: [Sent] = []
        var taken = WindowPlace()
        var bytes = 0
        for offset in Int(replay.position - first)..<state.window.count {
            let sent = state.window[offset]
            guard replay.position + UInt64(entries.count) <= replay.through, entries.count < Replay.batchBound.messages,
                entries.isEmpty || bytes + Int(sent.bytes) <= Replay.batchBound.bytes
            else { break }
            entries.append(sent)
            bytes += Int(sent.bytes)
            taken.logged = sent.loggedEnd - replay.place.logged
            switch sent.held {
            case .message: taken.held += 1
            case .payload: taken.heldPayloads += 1
            case .nothing: break
            }
        }
        guard !entries.isEmpty else { return nil }
        let batch = ReplayBatch(
            log: state.log.copy(at: replay.place.logged - state.released.logged, count: taken.logged),
            loggedFrom: replay.place.logged, entries: entries,
            held: Array(state.held.dropFirst(replay.place.held - state.released.held).prefix(taken.held)),
            heldPayloads: Array(state.heldPayloads.dropFirst(replay.place.heldPayloads - state.released.heldPayloads).prefix(taken.heldPayloads)))
        replay.position += UInt64(entries.count)
        replay.insideAMessage = batch.endsInsideAMessage
        replay.place.logged += taken.logged
        replay.place.held += taken.held
        replay.place.heldPayloads += taken.heldPayloads
        return batch
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
    /// `dropped`: its messages are counted as dropped for that cause (SPEC §3: an id's buffers
    /// released at expiry are counted; a window's messages not yet acknowledged went unsaid).
    func end(counting dropped: DropCause? = nil) {
        state.withLock { state in
            state.writer = nil
            state.ended = true
            if let dropped {
                let messages = (0..<state.window.count).count { state.window[$0].endsMessage }
                budget.dropped(dropped, count: messages)
            }
            releaseWindow(&state)
        }
    }

    // MARK: Host positions

    /// `message` split into the parts it goes out as, each with its position, kept whole in
    /// the window; nil when `writer` is no longer the id's (it was replaced): nothing is
    /// stamped and the message goes to the new writer.
    ///
    /// The parts of a payload alone in its buffer (a joined chunked request's echo) are kept as
    /// the slices they are, and the buffer's memory is charged once, on the last part: the
    /// others, released before it, free nothing. Copying each part cost the 1 MiB echo about 5 %
    /// of the host's CPU. Other parts are compacted one by one. The window's bound counts each
    /// part's encoded bytes only (SPEC §9): counted at the buffer's capacity (up to about twice
    /// the payload), a message kept in its buffer took twice its share of the window.
    func stamp(splitting message: Message, writer: ObjectIdentifier) -> [Message]? {
        state.withLock { state in
            guard state.writer == writer else { return nil }
            return keep(splitting: message, in: &state)
        }
    }

    /// Numbers `message` and keeps it in the window while the id has no socket or stream: its
    /// push buffer, full, hands its oldest here instead of dropping it. Nothing is numbered
    /// while the id has no writer, so it comes after every position given before and
    /// ahead of what stays buffered, numbered when a writer takes it: positions keep the order
    /// sent. Past the window's bound the oldest go, counted, and the client's next resume is
    /// told how many (SPEC §9); dropped from the buffer, they had no position and it never
    /// was. False, and nothing kept, once the id's state has ended.
    func keepWhileAway(_ message: Message) -> Bool {
        state.withLock { state in
            guard !state.ended else { return false }
            _ = keep(splitting: message, in: &state)
            return true
        }
    }

    private func keep(splitting message: Message, in state: inout State) -> [Message] {
        let parts = message.split()
        let sharesOneBuffer = parts.count > 1 && message.payload.isCompact
        let first = state.nextPosition
        var counted = message.payload.storageCapacity - message.payload.readableBytes
        var skipping = false
        return parts.indices.map { index in
            let stamped = Self.numbered(sharesOneBuffer ? parts[index] : parts[index].compacted(), state.nextPosition)
            let isLast = index == parts.count - 1
            counted += stamped.encodedSize
            let bytes = UInt32(stamped.encodedSize)
            let heldBytes = UInt32(sharesOneBuffer ? (isLast ? counted : 0) : stamped.encodedSize)
            guard !skipping, let memory = makeRoom(bytes, logging: 0, holding: heldBytes, as: .message, keepingFrom: first, in: &state) else {
                // Its parts kept so far are all the window holds (`makeRoom`): they go with
                // it, and the parts after it are not kept either (drops are whole).
                if !skipping, index > 0, !state.window.isEmpty {
                    state.counters.add(.evicted, state.window.count, metrics: budget.metrics)
                    releaseOldest(state.window.count, in: &state)
                }
                skipping = true
                skip(endingAMessage: isLast, in: &state)
                return stamped
            }
            Self.keep(Sent(bytes: bytes, loggedEnd: state.loggedEnd, heldBytes: heldBytes, held: .message, endsMessage: isLast), in: &state)
            state.held.append(stamped)
            settle(&state, foreseen: memory)
            return stamped
        }
    }

    /// Gives a message (or a part) that the host's budget can't cover its position without
    /// keeping it: a client that did not receive it is told it lost it (SPEC §9), and every
    /// window stays within the budget (SPEC §3). Kept uncharged, each id's newest message was
    /// outside it: 1,000 ids held 65 MB against a budget of 1 MiB.
    private func skip(endingAMessage endsMessage: Bool, in state: inout State) {
        state.nextField.increment()
        state.counters.add(.evicted, 1, metrics: budget.metrics)
        state.releasedInsideAMessage = !endsMessage
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
    /// apart from its frame (only when its buffer holds little else: an echo's, from a frame
    /// unmasked into a buffer of its own) is kept as it is: kept whole, the message cost an
    /// allocation and a copy of its header list, and copying a 16 KiB payload was most of
    /// resume's cost at that size. Nil, and nothing is encoded or numbered, when `writer` is no
    /// longer the id's; a message that breaks a limit throws and takes no position. Encoded
    /// under the lock, so positions go out in the order they are given.
    /// `ackAbove`, when the connection owes an acknowledgement: the last it sent; the id's `ack`
    /// goes with the message if it is above (SPEC §9 lets the host acknowledge on any message),
    /// which spares a `conduit.ack` frame.
    /// Inlined into its one caller, the socket's write: a call of its own cost a twentieth of
    /// resume's instructions in the routed echo.
    @inline(__always)
    func stamp(_ message: Message, writer: ObjectIdentifier, into frames: inout OutboundFrames, ackAbove: UInt64? = nil) throws(WireError) -> Stamped? {
        // The outcome leaves the lock through locals: returned through the lock's generic
        // closure (as a `Result`), it was copied and inspected by value-witness calls, which
        // the routed echo's profile showed.
        var stamped: Stamped?
        var failure: WireError?
        // Written apart from its frame (its buffer holds little else), the payload is kept as it is.
        let holdsPayload = OutboundFrames.writesApart(message.payload)
        state.withLock { state in
            guard state.writer == writer else { return }
            let ack = ackAbove.flatMap { state.clientAck > $0 ? state.clientAck : nil }
            let position = state.nextPosition
            let windowLimit = windowLimit
            var keptAsWritten = false
            do throws(WireError) {
                // Nearly always kept as it is written: its bytes copied into the log from the
                // frames' buffer in the same access to it. The closure captures neither the
                // message nor `self`: each was a retain and a release a message.
                let field = ack.map { Self.position(position, ack: $0) } ?? state.nextField
                let appended = try frames.append(message, appending: field) { encoded, appended in
                    guard !holdsPayload else { return }
                    keptAsWritten = Self.keepAsWritten(encoded, appended, windowLimit: windowLimit, in: &state)
                }
                if !keptAsWritten { keep(message, appended, holdingPayload: holdsPayload, at: position, from: frames, in: &state) }
                stamped = Stamped(appended: appended, ack: ack)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return stamped
    }

    /// Keeps a message just encoded (`encoded`: all of it, its payload in its frame) in the
    /// window as the next position's, to be copied whole into the log, when that is all
    /// there is to it, nearly always: it fits the window's bound and the storage of its log and
    /// list as they are, so the window's memory, charged already, does not change (foreseeing
    /// it for every message was a tenth of resume's cost in the routed echo). False, and
    /// nothing is kept, otherwise.
    private static func keepAsWritten(
        _ encoded: UnsafeRawBufferPointer, _ appended: OutboundFrames.Appended, windowLimit: Int,
        in state: inout State
    ) -> Bool {
        let bytes = UInt32(appended.encodedBytes)
        guard state.memoryIsCharged, state.windowBytes + Int(bytes) <= windowLimit, state.log.writableBytes >= Int(bytes), !state.window.isFull
        else { return false }
        state.log.appendFitting(encoded)
        keep(Sent(bytes: bytes, loggedEnd: state.loggedEnd, heldBytes: 0, held: .nothing, endsMessage: true), in: &state)
        assert(state.charged >= memory(of: state), "the window's memory grew on the path that foresaw no growth")
        return true
    }

    /// Keeps a message just appended to `frames` in the window at `position`, making room for it
    /// first. A large payload written apart from its frame (only when its buffer holds little
    /// else: an echo's, from a frame unmasked into a buffer of its own) is kept as it is.
    private func keep(
        _ message: Message, _ appended: OutboundFrames.Appended, holdingPayload holdsPayload: Bool, at position: UInt64, from frames: OutboundFrames,
        in state: inout State
    ) {
        let heldPayload = holdsPayload ? message.payload : nil
        let bytes = UInt32(appended.encodedBytes)
        let logged = heldPayload == nil ? bytes : UInt32(appended.bufferedRange.count)
        let heldBytes = UInt32(heldPayload?.storageCapacity ?? 0)
        let held = heldPayload == nil ? Held.nothing : .payload
        guard let memory = makeRoom(bytes, logging: logged, holding: heldBytes, as: held, keepingFrom: position, in: &state) else {
            return skip(endingAMessage: true, in: &state)
        }
        frames.withBytes(in: appended.bufferedRange) { state.log.append($0) }
        if let heldPayload { state.heldPayloads.append(heldPayload) }
        Self.keep(Sent(bytes: bytes, loggedEnd: state.loggedEnd, heldBytes: heldBytes, held: held, endsMessage: true), in: &state)
        settle(&state, foreseen: memory)
    }

    /// `pos` as the host gives it (and `ack`, when given): it takes the place of any `pos` or
    /// `ack` the message had (a handler's, or a relay's from a plain connection), which would
    /// otherwise tell the client of positions the host never sent or processed.
    fileprivate static func position(_ position: UInt64, ack: UInt64? = nil) -> Message.AppendedField {
        Message.AppendedField(ResumeHeader.positionField, position, alsoReplacing: ResumeHeader.ackField, alsoNumber: ack)
    }

    /// The memory the window takes: the storage of its log and of its lists, and what its
    /// messages hold apart from the log.
    private static func memory(of state: State) -> Int {
        state.log.capacity + state.heldBytes + state.window.capacity * MemoryLayout<Sent>.stride
            + state.held.capacity * MemoryLayout<Message>.stride + state.heldPayloads.capacity * MemoryLayout<ByteBuffer>.stride
            + state.processedAboveMemory
    }

    /// A set of positions' storage: a bucket of 8 bytes and a bit for each place and a third
    /// more (a set fills at most three quarters of its buckets), and its header.
    private static func memory(of positions: Set<UInt64>) -> Int {
        positions.capacity == 0 ? 0 : 64 + positions.capacity * 11
    }

    /// The window's memory once a message that puts `logged` bytes in the log and holds `held`
    /// bytes apart (in the list `kind` names) is kept.
    private static func memory(logging logged: Int, holding held: Int, as kind: Held, _ state: State) -> Int {
        let listGrowth =
            switch kind {
            case .nothing: 0
            case .message: growth(appendingTo: state.held)
            case .payload: growth(appendingTo: state.heldPayloads)
            }
        return memory(of: state) - state.log.capacity + state.log.capacity(appending: logged) + held
            + (state.window.isFull ? state.window.capacity * MemoryLayout<Sent>.stride : 0) + listGrowth
    }

    /// The bytes a list's storage grows by when one more element is appended: it doubles when it fills.
    private static func growth<Element>(appendingTo list: CircularBuffer<Element>) -> Int {
        list.count + 1 >= list.capacity ? list.capacity * MemoryLayout<Element>.stride : 0
    }

    /// Makes room for a message of `bytes` encoded bytes, `logged` of them for the log and
    /// `held` bytes of memory kept apart, that starts at position `first`: past the bound (its
    /// own, of encoded bytes, or the memory the host's budget gives) the oldest messages go,
    /// whole (every part of one still held), counted as evicted (a client that had not received
    /// them is told on its next connect). The newest message is kept whole even alone over the
    /// window's bound (SPEC §9) when the budget covers it. Returns the window's memory with the
    /// message kept, charged; nil when the budget can't cover it even alone: it is not kept.
    private func makeRoom(_ bytes: UInt32, logging logged: UInt32, holding held: UInt32, as kind: Held, keepingFrom first: UInt64, in state: inout State) -> Int? {
        while true {
            let memory = Self.memory(logging: Int(logged), holding: Int(held), as: kind, state)
            if state.windowBytes + Int(bytes) <= windowLimit, charge(memory, in: &state) {
                state.memoryIsCharged = true
                return memory
            }
            guard !state.window.isEmpty, state.firstPosition < first else {
                guard charge(memory, in: &state) else { return nil }
                state.memoryIsCharged = true
                return memory
            }
            var count = 1
            while !state.window[count - 1].endsMessage, count < state.window.count { count += 1 }
            releaseOldest(count, in: &state)
            state.counters.add(.evicted, count, metrics: budget.metrics)
        }
    }

    /// Makes the window's charge on the host's budget cover `memory`, topped up by a step, or by
    /// just what is missing when a step no longer fits; false when not even that does.
    private func charge(_ memory: Int, in state: inout State) -> Bool {
        guard memory > state.charged else { return true }
        guard !state.ended else { return false }
        let missing = memory - state.charged
        let step = max(missing, Self.budgetStep)
        if budget.reserve(step) {
            state.charged += step
        } else if step > missing, budget.reserve(missing) {
            state.charged += missing
        } else {
            return false
        }
        return true
    }

    /// Brings the charge to the window's memory: the budget is asked for what is missing (a
    /// newest message over the bound is kept without it), and given back what is more than two
    /// steps above it, all of it once the window is empty.
    private func settle(_ state: inout State) {
        let memory = Self.memory(of: state)
        state.memoryIsCharged = charge(memory, in: &state)
        guard state.memoryIsCharged else { return }
        let ahead = state.window.isEmpty ? 0 : Self.budgetStep
        guard state.charged > memory + 2 * ahead else { return }
        budget.release(state.charged - memory - ahead)
        state.charged = memory + ahead
    }

    /// `settle` after a message is kept: nothing to do when `makeRoom` charged the memory it
    /// foresaw (computing the memory again was a percent of the routed echo's CPU). The tests
    /// check the foresight on every message (it missed the growth of the held lists once).
    private func settle(_ state: inout State, foreseen memory: Int?) {
        guard let memory else { return settle(&state) }
        assert(memory == Self.memory(of: state), "the window's memory was foreseen \(memory), is \(Self.memory(of: state))")
    }

    /// Inlined: on every resumed message's path, where the call cost a third of the work.
    @inline(__always)
    private static func keep(_ sent: Sent, in state: inout State) {
        state.window.append(sent)
        state.nextField.increment()
        state.windowBytes += Int(sent.bytes)
        state.heldBytes += Int(sent.heldBytes)
    }

    /// The client holds every position up to `position`: those leave the window. Only from
    /// `writer`, the id's socket: one replaced speaks of positions the id may no longer have
    /// (after a reset, another epoch's).
    func acknowledge(_ position: UInt64, from writer: ObjectIdentifier?) {
        state.withLock { state in
            guard state.writer == writer else { return }
            acknowledge(position, in: &state)
        }
    }

    private func acknowledge(_ position: UInt64, in state: inout State) {
        let position = min(position, state.nextPosition - 1)
        guard position > state.acknowledged else { return }
        state.acknowledged = position
        let first = state.firstPosition
        guard !state.window.isEmpty, position >= first else { return }
        releaseOldest(Int(position - first) + 1, in: &state)
    }

    /// Takes the window's oldest `count` entries out; their bytes leave the log in one step,
    /// and the charge follows the memory.
    private func releaseOldest(_ count: Int, in state: inout State) {
        guard count > 0 else { return settle(&state) }
        let loggedBytes = state.window[count - 1].loggedEnd - state.released.logged
        // Nearly always the window holds nothing apart from the log, and each entry's bytes
        // are all in it: the sums are known without a loop (one over 32 entries an
        // acknowledgement was a twentieth of resume's cost in the routed echo).
        var windowBytes = loggedBytes
        var heldBytes = 0
        var heldMessages = 0
        var heldPayloads = 0
        if !state.held.isEmpty || !state.heldPayloads.isEmpty {
            windowBytes = 0
            for offset in 0..<count {
                let sent = state.window[offset]
                windowBytes += Int(sent.bytes)
                heldBytes += Int(sent.heldBytes)
                switch sent.held {
                case .message: heldMessages += 1
                case .payload: heldPayloads += 1
                case .nothing: break
                }
            }
        }
        state.releasedInsideAMessage = !state.window[count - 1].endsMessage
        state.window.removeFirst(count)
        state.windowBytes -= windowBytes
        state.heldBytes -= heldBytes
        if heldMessages > 0 { state.held.removeFirst(heldMessages) }
        if heldPayloads > 0 { state.heldPayloads.removeFirst(heldPayloads) }
        state.log.release(loggedBytes)
        state.released.logged += loggedBytes
        state.released.held += heldMessages
        state.released.heldPayloads += heldPayloads
        if state.window.isEmpty {
            // All acknowledged: an idle id keeps a small log and small lists only.
            if state.log.capacity > Self.keptLogCapacity { state.log = ResumeLog() } else { state.log.clear() }
            if state.window.capacity > Self.keptListCapacity { Self.emptyLists(&state) }
        }
        settle(&state)
    }

    private static func emptyLists(_ state: inout State) {
        state.window = ValueRing(minimumCapacity: 4)
        state.held = CircularBuffer(initialCapacity: 1)
        state.heldPayloads = CircularBuffer(initialCapacity: 1)
    }

    /// The window's messages all go, its storage with them, and the budget gets its charge back.
    private func releaseWindow(_ state: inout State) {
        state.processedAbove = []
        state.processedAboveMemory = 0
        releaseOldest(state.window.count, in: &state)
        state.log = ResumeLog()
        Self.emptyLists(&state)
        budget.release(state.charged)
        state.charged = 0
        state.memoryIsCharged = false
    }

    /// The id has no socket or stream for now: the window keeps its messages in storage of
    /// their size, and none once empty (an id that waits out its grace period otherwise held
    /// up to 64 KiB of log, and its lists as long as they ever were).
    func idle() {
        state.withLock { state in
            if state.window.isEmpty {
                state.log = ResumeLog()
                Self.emptyLists(&state)
            } else {
                state.log = state.log.compacted()
                state.window = state.window.resized(minimumCapacity: state.window.count)
            }
            settle(&state)
        }
    }

    // MARK: Client positions

    enum ClientPosition {
        /// Processed already: the message is dropped (counted).
        case duplicate
        case admitted
        /// Too many positions wait above an open chunked request (4,096, or what the budget can
        /// cover): the connection is closed, the message not dispatched nor its position recorded.
        case tooManyAbove
        /// From a socket another replaced (it is closing), or whose state ended (a plain
        /// connection took the id, closing it too; an ended state has no writer): neither
        /// dispatched nor recorded. Its client sends it again on the new one, above that one's
        /// greeting's `ack`; admitted, after a reset a position of the old epoch counted in the
        /// new one, and the new client's own messages with those positions were dropped as
        /// duplicates.
        case superseded
    }

    /// Checks a client position and, unless it is a duplicate, records it, in one step.
    /// `isChunk`: a chunk of a request still open, not processed until the request is (its
    /// position is not recorded; the caller holds it as `openFrom`). `openFrom`: the first
    /// position of the chunked request open on the connection; the acknowledgement stays
    /// below it (positions increase, so everything processed meanwhile is above it).
    /// `ack`: the host positions the message acknowledges, applied under the same lock.
    func admit(_ position: UInt64, isChunk: Bool, openFrom: UInt64?, acknowledging ack: UInt64? = nil, from writer: ObjectIdentifier?) -> ClientPosition {
        state.withLock { state in
            guard state.writer == writer else { return .superseded }
            if let ack { acknowledge(ack, in: &state) }
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
                if !state.processedAbove.isEmpty { notePositions(in: &state) { $0.removeAll() } }
                return .admitted
            }
            // Refused, the position is not recorded: the message is not dispatched, and its
            // client sends it again after reconnecting.
            guard state.processedAbove.count < Self.maxProcessedAbove else { return .tooManyAbove }
            guard notePositions(in: &state, { $0.insert(position) }) else {
                notePositions(in: &state) { $0.remove(position) }
                return .tooManyAbove
            }
            return .admitted
        }
    }

    /// Changes the positions above the acknowledgement; when their storage changes size, the
    /// window's charge follows. False when the budget can't cover it.
    @discardableResult
    private func notePositions(in state: inout State, _ change: (inout Set<UInt64>) -> Void) -> Bool {
        change(&state.processedAbove)
        let memory = Self.memory(of: state.processedAbove)
        guard memory != state.processedAboveMemory else { return true }
        state.processedAboveMemory = memory
        settle(&state)
        return state.memoryIsCharged
    }

    private func duplicate(in state: inout State) -> ClientPosition {
        state.counters.add(.duplicate, 1, metrics: budget.metrics)
        return .duplicate
    }

    /// The last client position the host acknowledges.
    var clientAck: UInt64 { state.withLock { $0.clientAck } }

    // MARK: Diagnostics

    var snapshot: ResumeSnapshot {
        state.withLock { state in
            ResumeSnapshot(
                epoch: state.epoch, sent: state.nextPosition - 1, acknowledged: state.acknowledged,
                windowMessages: state.window.count, windowBytes: state.windowBytes, windowMemoryBytes: Self.memory(of: state),
                clientAcknowledged: state.clientAck,
                replayed: state.counters[.replayed], duplicates: state.counters[.duplicate], lost: state.counters[.lost],
                evicted: state.counters[.evicted], resets: state.counters[.reset], carried: state.counters[.carried])
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
    /// A message a reset sent again with a new position: sent in the epoch the reset ended and
    /// never acknowledged, to a client that had not read that epoch's greeting.
    case carried
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
