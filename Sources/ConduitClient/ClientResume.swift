import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

/// The client's side of resume (SPEC §9): numbers what it sends and keeps it until the host
/// acknowledges it (to send again after a reconnect), drops host positions already delivered,
/// and says when to acknowledge (every 32 messages, or 200 ms after the first one owed).
final class ClientResume: Sendable {
    /// Bytes of sent messages kept unacknowledged; past it `send` refuses new messages.
    static let windowBytes = 4 << 20
    /// How far past `windowBytes` cancellations may go (`number(_:pastWindow:)`).
    static let pastWindowBytes = 64 << 10
    static let ackEveryMessages = 32
    static let ackWithin = TimeAmount.milliseconds(200)

    private struct Kept {
        let message: Message
        let position: UInt64
        let bytes: Int
        /// The message's last part (or its only one).
        let endsMessage: Bool
    }

    private struct State {
        var epoch: String?
        /// Every host position up to this one was delivered.
        var received: UInt64 = 0
        var nextPosition: UInt64 = 1
        var kept = CircularBuffer<Kept>()
        var keptBytes = 0
        /// Every kept position up to this one went out on a socket (so a host that lost its
        /// state may have processed it). Positions go out in order, so this one number says it.
        var sentThrough: UInt64 = 0
        var owed = 0
        var ackScheduled = false
        var lastAckSent: UInt64 = 0
        var duplicates = 0
        /// The epoch of the last reset whose unconfirmed messages were forgotten.
        var forgottenFor: String?
        /// The last host position reported lost: a greeting that counts it again tells nothing new.
        var lostThrough: UInt64 = 0
        /// Frames since the last position received that did not decode: each had a position,
        /// which the next one received follows.
        var undecoded: UInt64 = 0
        /// A position that skipped ahead was reported since the last greeting: what comes after
        /// it (from the socket or stream given up) is dropped without a word, and comes again
        /// after the next greeting.
        var skipReported = false
        /// The connect (socket or events stream) that stated `resume` and `epoch` and awaits
        /// its greeting, and since when.
        var awaited: (ticket: Int, since: ContinuousClock.Instant)?
        var lastTicket = 0

        /// After a reset the host no longer knows which of ours it processed: sending those
        /// again could run them twice, so only the ones that never went out stay. Once per reset.
        /// Whole messages only: one whose last part never went out was never dispatched, so it
        /// stays whole (without its first parts, the rest went out as a request of their own).
        mutating func forgetSent(resetTo epoch: String?) {
            guard forgottenFor != epoch else { return }
            forgottenFor = epoch
            var forgotten = 0
            for (index, entry) in kept.enumerated() {
                guard entry.position <= sentThrough else { break }
                if entry.endsMessage { forgotten = index + 1 }
            }
            for _ in 0..<forgotten {
                keptBytes -= kept.removeFirst().bytes
            }
        }
    }

    private let state = NIOLockedValueBox(State())

    /// `resume` and `epoch` for a socket URL or the events stream, with the ticket `settle`
    /// takes; nil while another connect's greeting is awaited. Two in flight stated the same
    /// epoch: when the host no longer held it, the first began a new epoch, and the second
    /// another, sending the first's messages again with new positions (delivered twice). A
    /// greeting ends the wait, as does `settle` (its connect failed) or `greetingWait`.
    func stateForConnect() -> StatedPosition? {
        state.withLockedValue { state in
            if let awaited = state.awaited, awaited.since.duration(to: .now) < Self.greetingWait { return nil }
            state.lastTicket += 1
            state.awaited = (state.lastTicket, .now)
            let query = [("resume", "\(state.received)")] + (state.epoch.map { [("epoch", $0)] } ?? [])
            return StatedPosition(query: query, ticket: state.lastTicket)
        }
    }

    /// A connect that stated its position ended without its greeting being taken in.
    func settle(_ stated: StatedPosition?) {
        guard let stated else { return }
        state.withLockedValue { state in
            if state.awaited?.ticket == stated.ticket { state.awaited = nil }
        }
    }

    /// How long a connect's greeting is waited for before another connect may state its
    /// position regardless: one that lost track of its ticket must not stop the client for good.
    static let greetingWait = Duration.seconds(15)

    /// Host positions dropped as already delivered.
    var duplicates: Int { state.withLockedValue { $0.duplicates } }

    // MARK: Sending

    /// Numbers `message` (split into parts, each numbered) and keeps it until acknowledged;
    /// false when the window is full; `pastWindow` (a cancellation) goes up to 64 KiB further,
    /// which requests that time out while no socket takes anything can't grow without end.
    func number(_ message: Message, pastWindow: Bool = false) -> Bool {
        state.withLockedValue { state in
            guard state.keptBytes < Self.windowBytes + (pastWindow ? Self.pastWindowBytes : 0) else { return false }
            let parts = message.split()
            for (index, part) in parts.enumerated() {
                var numbered = part
                // `pos` and `ack` are the connection's (SPEC §9): an application's `ack` told the
                // host the client held host positions it may never have received.
                numbered.headers.removeAll(ResumeHeader.ack)
                numbered.headers.replaceOrAppend(ResumeHeader.position, "\(state.nextPosition)")
                let bytes = numbered.encodedSize
                state.kept.append(Kept(message: numbered, position: state.nextPosition, bytes: bytes, endsMessage: index == parts.count - 1))
                state.keptBytes += bytes
                state.nextPosition += 1
            }
            return true
        }
    }

    /// Kept messages from position `first` on, in order: at most `maxCount`, and about
    /// `maxBytes` (at least one); `next`: the position after them; `isAll`: nothing more is
    /// kept from there. Kept positions have no gaps (they are released from the oldest), so the
    /// first is found by subtraction.
    func unsent(from first: UInt64, maxCount: Int, maxBytes: Int) -> (messages: [Message], next: UInt64, isAll: Bool) {
        state.withLockedValue { state in
            guard let oldest = state.kept.first?.position, first < state.nextPosition else { return ([], first, true) }
            var index = state.kept.index(state.kept.startIndex, offsetBy: Int(max(first, oldest) - oldest))
            var messages: [Message] = []
            var bytes = 0
            while index < state.kept.endIndex, messages.count < maxCount, messages.isEmpty || bytes + state.kept[index].bytes <= maxBytes {
                messages.append(state.kept[index].message)
                bytes += state.kept[index].bytes
                index = state.kept.index(after: index)
            }
            let next = max(first, oldest) + UInt64(messages.count)
            return (messages, next, next == state.nextPosition)
        }
    }

    /// Every kept position before `next` went out on a socket, in order.
    func sent(before next: UInt64) {
        state.withLockedValue { $0.sentThrough = max($0.sentThrough, next - 1) }
    }

    /// Every kept position up to this one went out on a socket.
    var sentThrough: UInt64 { state.withLockedValue { $0.sentThrough } }

    /// The host processed every client position up to `position`: of those that went out. An
    /// acknowledgement above them (a host's mistake) released messages no host ever had.
    func acknowledged(_ position: UInt64) {
        state.withLockedValue { state in
            let position = min(position, state.sentThrough)
            while let first = state.kept.first, first.position <= position {
                state.keptBytes -= first.bytes
                state.kept.removeFirst()
            }
        }
    }

    // MARK: Receiving

    enum Inbound {
        case deliver(Message)
        /// A duplicate or an acknowledgement: nothing for the application.
        case consumed
        /// `conduit.resume`: what the application is told.
        case greeting(reset: Bool, lost: Int)
        /// A position past the next one that no greeting counted lost: not delivered, nor taken
        /// as received (taken, it made every position below it a duplicate, dropped unseen).
        /// The socket or stream that brought it is given up; the next, asked from the last
        /// position received, has what is missing sent again or counted in its greeting's
        /// `lost`. The error is told once; until the next greeting, every later position is
        /// `skipped(nil)`.
        case skipped(ConduitClientError?)
    }

    /// What to make of a message from the host, in the order they are delivered. The host may
    /// acknowledge on any message, not only `conduit.ack` (SPEC §9); `ack` and `pos` are the
    /// connection's and never reach the application. `parts`: the frames it was joined from,
    /// each numbered (its position is its last part's).
    func admit(_ message: Message, parts: Int = 1) -> Inbound {
        if message.headers.isResumeControl(route: ResumeHeader.resumeRoute) { return greeting(message.headers) }
        if let ack = Self.position(ResumeHeader.ack, in: message.headers) { acknowledged(ack) }
        if message.headers.isResumeControl(route: ResumeHeader.ackRoute) { return .consumed }
        guard let position = Self.position(ResumeHeader.position, in: message.headers) else { return .deliver(message) }
        switch receive(position, parts: parts) {
        case .duplicate: return .consumed
        case .skipped(let error): return .skipped(error)
        case .received: break
        }
        var delivered = message
        delivered.headers.removeAll(ResumeHeader.position)
        delivered.headers.removeAll(ResumeHeader.ack)
        return .deliver(delivered)
    }

    /// A message the client dropped whole (`Arrival.dropped`), by its last part's headers: its
    /// position is received all the same (acknowledged, not asked for again). False for a copy
    /// of one received already: a duplicate, not dropped (nor reported) twice. How many parts
    /// it had is not known (one may not have decoded): its position is not checked for a gap.
    func admitDropped(lastPart headers: Headers) -> Bool {
        if let ack = Self.position(ResumeHeader.ack, in: headers) { acknowledged(ack) }
        guard let position = Self.position(ResumeHeader.position, in: headers) else { return true }
        return receive(position, parts: nil) == .received
    }

    /// A frame from the host did not decode: its position, unknown, is one the next message
    /// follows.
    func undecodedFrame() {
        state.withLockedValue { $0.undecoded += 1 }
    }

    private enum Receipt: Equatable {
        case received
        case duplicate
        case skipped(ConduitClientError?)
    }

    /// Takes host position `position`, the last of a message of `parts` frames, as received
    /// unless it was already (a duplicate) or its first part is past the next position (SPEC §9:
    /// positions follow one another; only those a greeting counted lost may be missing).
    private func receive(_ position: UInt64, parts: Int?) -> Receipt {
        state.withLockedValue { state in
            // Nothing more is taken from the socket or stream given up.
            guard !state.skipReported else { return .skipped(nil) }
            guard position > state.received else {
                state.duplicates += 1
                return .duplicate
            }
            let expected = max(state.received, state.lostThrough) &+ 1 &+ state.undecoded
            if let parts, case let first = position - min(position - 1, UInt64(parts - 1)), first > expected {
                state.skipReported = true
                return .skipped(ConduitClientError(
                    .positionSkipped, "the host sent position \(first) where \(expected) was next; resumed again from \(state.received)"))
            }
            state.undecoded = 0
            state.received = position
            state.owed += 1
            return .received
        }
    }

    private func greeting(_ headers: Headers) -> Inbound {
        let reset = headers["reset"] == "true"
        let lost = Self.position("lost", in: headers) ?? 0
        return state.withLockedValue { state in
            state.awaited = nil
            state.undecoded = 0
            state.skipReported = false
            let hadEpoch = state.epoch != nil
            state.epoch = headers[ResumeHeader.epoch]
            if reset {
                state.received = 0
                state.lastAckSent = 0
                state.lostThrough = 0
                state.forgetSent(resetTo: state.epoch)
                return .greeting(reset: hadEpoch, lost: Int(clamping: lost))
            }
            // `lost` counts the positions after the `resumed` N that the host no longer holds.
            // The events stream and a socket that asked with the same N (the second asked before
            // the first's greeting was read) both count them: only positions neither delivered
            // nor reported yet are news.
            let resumed = Self.position("resumed", in: headers) ?? state.received
            let lostEnd = resumed > .max - lost ? .max : resumed + lost
            let news = lostEnd - min(lostEnd, max(resumed, state.received, state.lostThrough))
            state.lostThrough = max(state.lostThrough, lostEnd)
            return .greeting(reset: false, lost: Int(clamping: news))
        }
    }

    /// The first position to send again on a new socket, once its greeting acknowledged `ack`
    /// (after a reset: the first that never went out).
    func firstToSend(after greeting: Message) -> UInt64 {
        let headers = greeting.headers
        if headers["reset"] == "true" {
            state.withLockedValue { $0.forgetSent(resetTo: headers[ResumeHeader.epoch]) }
        } else if let ack = Self.position(ResumeHeader.ack, in: headers) {
            acknowledged(ack)
        }
        return state.withLockedValue { $0.kept.first?.position ?? $0.nextPosition }
    }

    /// The position in header `name`, read as the host reads them (decimal digits only, SPEC
    /// §9); nil when absent or not one, which is then taken as absent.
    private static func position(_ name: String, in headers: Headers) -> UInt64? {
        headers[name].flatMap { UInt64(decimalDigits: $0.utf8) }
    }

    // MARK: Acknowledging

    enum AckDue {
        case now(Message)
        case later
        case no
    }

    /// Whether to acknowledge what was delivered: now, in `ackWithin` (the caller schedules
    /// `dueAck(force: true)`), or not. Not while the socket takes no more (`socketTakesMore`):
    /// acknowledgements are cumulative, so the latest one, sent once it does, says all of them.
    func dueAck(force: Bool = false, socketTakesMore: Bool) -> AckDue {
        state.withLockedValue { state in
            if force { state.ackScheduled = false }
            guard state.received > state.lastAckSent else { return .no }
            if socketTakesMore, force || state.owed >= Self.ackEveryMessages {
                state.owed = 0
                state.lastAckSent = state.received
                return .now(Message(headers: [ResumeHeader.ack: "\(state.received)"]))
            }
            guard !state.ackScheduled else { return .no }
            state.ackScheduled = true
            return .later
        }
    }
}

extension ClientResume: CustomDebugStringConvertible {
    /// Both directions' positions, for a log or a failing test.
    var debugDescription: String {
        state.withLockedValue { state in
            "epoch \(state.epoch ?? "none"), received \(state.received) (acknowledged \(state.lastAckSent)); "
                + "kept \(state.kept.first?.position ?? state.nextPosition)..<\(state.nextPosition) (\(state.keptBytes) bytes), sent through \(state.sentThrough)"
        }
    }
}

/// What a connect stated of the client's position (`ClientResume.stateForConnect`).
struct StatedPosition: Sendable {
    let query: [(String, String)]
    let ticket: Int
}
