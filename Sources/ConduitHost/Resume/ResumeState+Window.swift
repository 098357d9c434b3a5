import ConduitWire
import NIOCore
import Synchronization

/// Host → client: messages numbered as they are written and kept in the window until acknowledged.
extension ResumeState {
    /// An empty log larger than this is let go.
    private static let keptLogCapacity = 64 * 1024
    /// So are empty lists of more entries than this.
    private static let keptListCapacity = 1024

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
    static func position(_ position: UInt64, ack: UInt64? = nil) -> Message.AppendedField {
        Message.AppendedField(ResumeHeader.positionField, position, alsoReplacing: ResumeHeader.ackField, alsoNumber: ack)
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

    func acknowledge(_ position: UInt64, in state: inout State) {
        let position = min(position, state.nextPosition - 1)
        guard position > state.acknowledged else { return }
        state.acknowledged = position
        let first = state.firstPosition
        guard !state.window.isEmpty, position >= first else { return }
        releaseOldest(Int(position - first) + 1, in: &state)
    }

    /// Takes the window's oldest `count` entries out; their bytes leave the log in one step,
    /// and the charge follows the memory.
    func releaseOldest(_ count: Int, in state: inout State) {
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

    static func emptyLists(_ state: inout State) {
        state.window = ValueRing(minimumCapacity: 4)
        state.held = CircularBuffer(initialCapacity: 1)
        state.heldPayloads = CircularBuffer(initialCapacity: 1)
    }

    /// The window's messages all go, its storage with them, and the budget gets its charge back.
    func releaseWindow(_ state: inout State) {
        state.processedAbove = []
        state.processedAboveMemory = 0
        releaseOldest(state.window.count, in: &state)
        state.log = ResumeLog()
        Self.emptyLists(&state)
        budget.release(state.charged)
        state.charged = 0
        state.memoryIsCharged = false
    }
}
