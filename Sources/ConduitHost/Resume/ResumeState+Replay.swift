import ConduitKit
import ConduitWire
import NIOCore
import Synchronization

/// A resuming connect: its greeting, and the replay of what the client lacks (or a reset).
extension ResumeState {
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
}
