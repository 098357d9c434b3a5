import ConduitKit
import ConduitWire
import NIOCore
import NIOWebSocket

/// Resume on the connection (SPEC §9): the greeting and replay first, `ack` and `pos` taken off
/// what the client sends (duplicates dropped), and acknowledgements of client positions at
/// least every 32 messages or 200 ms.
extension SessionHandler {
    func beginResume(_ state: ResumeState, _ greeting: ResumeState.Greeting) {
        attach(state)
        writeUnnumbered(greeting.message)
        guard greeting.replay.count > 0 else { return }
        replaying = greeting.replay
        writeReplay()
    }

    /// The next batch waits this long: a timer not yet due when the event loop next looks ends
    /// its turn, so it reads its sockets in between (SwiftNIO runs the tasks that tasks queue
    /// before it polls them again).
    static let replayPause = TimeAmount.microseconds(100)

    /// Writes the next batch of the replay while the socket takes more (else it goes on when it
    /// does: written regardless, a replay to a client that did not read held the whole window
    /// a second time in the channel, outside the budget); live messages wait in the outbound
    /// queue until the last (numbered only when written, they follow it). A socket that closes
    /// meanwhile drops the rest (a dropped connection too, which sends no close: written on,
    /// every batch went to a dead channel): the window still holds it for the next one.
    ///
    /// A batch flushes itself, the timer for the next one the last thing it does: a flush
    /// queued as a task ran after the batch, and one that took longer than the pause made the
    /// next batch due before the loop looked at its sockets, and so on; on a loaded machine
    /// 60 batches ran back to back for 600 ms.
    func writeReplay() {
        guard var replay = replaying else { return }
        guard let context, !closeSent, !isClosed else { return replaying = nil }
        guard context.channel.isWritable else { return replayWaitsForWritable = true }
        guard let batch = replay.nextBatch() else {
            replaying = nil
            // Else the next message went out after a part with `more`, and the client joined the two.
            if replay.isCutInsideAMessage { return close(code: .normalClosure, reason: Self.replayCutInsideAMessage) }
            return writePending(context)
        }
        for message in batch { writeUnnumbered(message) }
        replaying = replay
        if batch.endsInsideAMessage {
            partsOpen = true
        } else if partsOpen {
            partsClosed()
        }
        flushIfNeeded(context)
        guard context.channel.isWritable else { return replayWaitsForWritable = true }
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.replayPause) { self.writeReplay() }
    }

    /// The client resumes past the message on its next socket.
    static let replayCutInsideAMessage = "the rest of a message the replay had begun was acknowledged: resume"

    /// What becomes of a message on a resuming connection once its `ack` and `pos` are taken off.
    enum ResumedInbound {
        /// A bare acknowledgement, a duplicate or a malformed position (answered): nothing more.
        case consumed
        case dispatch
        /// Too many positions wait above an open chunked request.
        case overflow
    }

    /// Applies the acknowledgement and checks and records the client position (one lock for
    /// both) of a message whose `ack` and `pos` the decoder set aside: a chunk of a request
    /// still open holds the acknowledgement below it until the request is complete.
    func admitResumed(
        to resume: ResumeState, _ kind: InboundKind, route: String?, headers: Headers, ack ackValue: SetAsideNumbers.Value, position positionValue: SetAsideNumbers.Value
    ) -> ResumedInbound {
        guard let ack = number(ackValue), let position = number(positionValue) else {
            replyError(.badRequest("'ack' and 'pos' must be uint64 positions"), route: route, correlation: headers.correlation)
            return .consumed
        }
        guard ack != nil || position != nil else { return .dispatch }
        guard let position else {
            if let ack { resume.acknowledge(ack, from: writerID) }
            let isBareAck = kind == .chunk && route == nil && headers[HeaderName.to] == nil
            return isBareAck ? .consumed : .dispatch
        }
        let isChunk = kind == .chunk
        // A message that completes a request closes the chunked one it may end.
        let openFrom = isChunk || kind.standsAlone ? clientPositions.openChunkFrom : nil
        switch resume.admit(position, isChunk: isChunk, openFrom: openFrom, acknowledging: ack, from: writerID) {
        case .superseded:
            return .consumed
        case .duplicate:
            // What completes a request came as a duplicate: the request was dispatched on another
            // socket of the id (one replaced, still reading), chunks and all. The chunks this
            // connection holds are that request's (they came just before it): joined to the
            // next request, they corrupted it.
            if !isChunk, !kind.standsAlone, clientPositions.openChunkFrom != nil { dropOpenChunks() }
            oweClientAck(clientPositions.owe())
            return .consumed
        case .tooManyAbove:
            return .overflow
        case .admitted:
            // One access to the connection's positions: each is an exclusivity check.
            if let due = clientPositions.admitted(position, isChunk: isChunk, standsAlone: kind.standsAlone) { oweClientAck(due) }
            return .dispatch
        }
    }

    /// Empties the chunk queue of a request that will not be completed on this connection.
    private func dropOpenChunks() {
        assembler.reset()
        syncChunkReservation()
        refusedRequest = nil
        clientPositions.openChunkFrom = nil
    }

    /// A set-aside value as a position: nil inside when absent, nil outside when malformed.
    private func number(_ value: SetAsideNumbers.Value) -> UInt64?? {
        switch value {
        case .absent: .some(nil)
        case .number(let number): .some(number)
        case .malformed: nil
        }
    }

    /// Inlined, as `admitted`: on every resumed message's path, where a call cost as much as the work.
    @inline(__always)
    private func oweClientAck(_ due: ClientPositions.AckDue) {
        switch due {
        // With the next numbered message this read makes (a reply), else alone once it ends.
        case .now: clientPositions.ackDue = true
        case .scheduled: break
        case .later:
            guard let context else { return }
            clientPositions.timer = context.eventLoop.assumeIsolated().scheduleTask(in: ClientPositions.ackWithin) {
                self.clientPositions.timer = nil
                self.sendClientAck()
            }
        }
    }

    /// Sends `conduit.ack` with the last client position processed, if it moved. While the
    /// socket takes no more it waits, owed (it is cumulative: the one sent then says it all):
    /// written regardless, a client that sent positions and read nothing had an ack a read
    /// pile up in the channel, outside every bound.
    func sendClientAck() {
        guard let resume, let context else { return }
        guard context.channel.isWritable, !partsOpen, !frameOpen else { return clientPositions.ackDue = true }
        let ack = resume.clientAck
        guard clientPositions.shouldSend(ack) else { return }
        writeUnnumbered(Self.acknowledgement, appending: Message.AppendedField(ResumeHeader.ackField, ack))
    }

    /// `conduit.ack` without its number, made once: one is sent every 32 client messages.
    private static let acknowledgement = Message(headers: [HeaderName.route: ResumeHeader.ackRoute])
}

/// A resuming connection's side of client positions: the chunked request it holds open, and
/// when it acknowledges (after 32 positions, or 200 ms after the first one not acknowledged).
/// The timer is left running when 32 positions send the ack first: it then finds less or
/// nothing to send, and the busy path schedules at most one timer per 200 ms instead of
/// cancelling and scheduling one per ack (a visible cost in the pipelined echo's profile).
struct ClientPositions {
    static let ackEveryMessages = 32
    static let ackWithin = TimeAmount.milliseconds(200)

    /// The first position of a chunked request not complete yet.
    var openChunkFrom: UInt64?
    var timer: Scheduled<Void>?
    /// 32 positions are owed: the ack goes with the next numbered message the connection
    /// writes, or alone when the read that made them owed ends.
    var ackDue = false
    private var owed = 0
    private(set) var lastAckSent: UInt64 = 0

    enum AckDue {
        /// 32 positions are owed: the ack goes now.
        case now
        /// The first owed: the timer starts.
        case later
        /// The timer runs already.
        case scheduled
    }

    /// Counts one more position to acknowledge.
    mutating func owe() -> AckDue {
        owed += 1
        if owed >= Self.ackEveryMessages { return .now }
        return timer == nil ? .later : .scheduled
    }

    /// Records an admitted client position: a chunk opens the chunked request unless one is
    /// open; what completes a request closes it. Nil for a chunk (acknowledged only with its
    /// request), else the acknowledgement owed.
    @inline(__always)
    mutating func admitted(_ position: UInt64, isChunk: Bool, standsAlone: Bool) -> AckDue? {
        if isChunk {
            if openChunkFrom == nil { openChunkFrom = position }
            return nil
        }
        if !standsAlone { openChunkFrom = nil }
        return owe()
    }

    /// Whether `ack` is to be sent now; it is then taken as sent.
    mutating func shouldSend(_ ack: UInt64) -> Bool {
        guard ack > lastAckSent else {
            sent(ack: nil)
            return false
        }
        sent(ack: ack)
        return true
    }

    /// An acknowledgement went (nil: none was needed): nothing is owed.
    mutating func sent(ack: UInt64?) {
        owed = 0
        ackDue = false
        if let ack { lastAckSent = ack }
    }

    mutating func stop() {
        timer?.cancel()
        timer = nil
    }
}
