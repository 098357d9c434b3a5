import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

/// Resume on the client (SPEC §9): numbered sends kept until acknowledged, sent again after
/// the greeting of a new socket, and acknowledgements of what was delivered.
extension Conduit {
    /// Numbers and keeps `message`; it goes out when the socket is open and its greeting was
    /// answered, else with the next socket's. Numbered under the state's lock, and written only
    /// by the drain of the kept log (below), so positions reach the socket in order.
    /// False: the window is full, or the client is closed (a message kept then would never go).
    func sendNumbered(_ message: Message, _ resumption: ClientResume, pastWindow: Bool) throws(WireError) -> Bool {
        // With room for `pos` (and `more` on parts): a message numbered without it could not
        // be encoded, and its caller waited out its timeout.
        try message.validateHeaderLimitsForSending(numbered: true)
        let (accepted, reconnect) = state.withLockedValue { state -> (Bool, Bool) in
            guard !state.isClosed, resumption.number(message, pastWindow: pastWindow) else { return (false, false) }
            guard let connection = state.connection, state.writeCursor != nil else { return (true, true) }
            startDrain(&state, onto: connection, resumption)
            return (true, false)
        }
        if reconnect, autoReconnect { reconnectBySending() }
        return accepted
    }

    /// A new socket's greeting, on its event loop: what the host has not processed is sent
    /// again, in order, from the first position it lacks; new messages follow. Only the first
    /// on a socket: a host that greeted again and again, reading nothing, had the whole kept
    /// log written into the channel each time, without a bound.
    func resendAfter(_ greeting: Message) {
        guard let resumption else { return }
        state.withLockedValue { state in
            guard let connection = state.connection, state.writeCursor == nil else { return }
            state.writeCursor = resumption.firstToSend(after: greeting)
            startDrain(&state, onto: connection, resumption)
        }
    }

    /// Queues a drain of the kept log onto `connection` unless one is queued. A write made
    /// from the caller's thread could overtake one queued before it; a write made at once on the
    /// event loop, meeting a reset connection, closes it there and then, and a reconnect started
    /// from that close would state the old epoch before the greeting being handled was taken in.
    private func startDrain(_ state: inout ConnectionState, onto connection: WebSocketConnection, _ resumption: ClientResume) {
        guard !state.isDraining else { return }
        state.isDraining = true
        connection.channel.eventLoop.execute { self.drain(onto: connection, resumption) }
    }

    /// At most this many kept messages, and about this many bytes of them, are written between
    /// two turns of the event loop.
    static let drainBatch = (messages: 64, bytes: 64 << 10)

    /// The next batch waits this long: a timer not yet due when the event loop next looks ends
    /// its turn, so it reads its sockets in between. Queued with `execute`, the batches held the
    /// loop's sockets until the whole backlog was written (SwiftNIO runs the tasks that tasks
    /// queue before it polls again; only its timers ran): 30,000 kept messages kept a socket on
    /// the client's loop unread for 3.2 s, and a proxy on that loop forwarded nothing before the
    /// next reset, socket after socket (the many-tasks chaos test's stall).
    static let drainPause = TimeAmount.microseconds(100)
    static let unsentPoll = TimeAmount.milliseconds(50)

    /// On the event loop: writes the kept messages from the socket's cursor with one flush, a
    /// batch at a time, and comes back after `drainPause` while more wait. A reconnect can find
    /// megabytes unacknowledged: written in one go they held the event loop (and the reads,
    /// timers and sockets on it) for seconds in a debug build, and a network that cut the
    /// socket sooner than that let nothing through, ever.
    ///
    /// A socket holding `maxUnsentBytes` unwritten takes nothing more until it drains (looked at
    /// every `unsentPoll`): written regardless, they counted as sent, and a host that
    /// acknowledged positions it never read let the client take and write more without end.
    private func drain(onto connection: WebSocketConnection, _ resumption: ClientResume) {
        guard connection.takesMore else {
            guard connection.channel.isActive else { return }
            connection.channel.eventLoop.scheduleTask(in: Self.unsentPoll) { self.drain(onto: connection, resumption) }
            return
        }
        let batch = state.withLockedValue { state -> (messages: [Message], next: UInt64, isAll: Bool)? in
            // A later socket has its own drain.
            guard state.connection === connection, let cursor = state.writeCursor else { return nil }
            let unsent = resumption.unsent(from: cursor, maxCount: Self.drainBatch.messages, maxBytes: Self.drainBatch.bytes)
            state.writeCursor = unsent.next
            // Taken all: a message numbered from now on queues a drain of its own (after this one).
            if unsent.isAll { state.isDraining = false }
            return unsent.messages.isEmpty ? nil : unsent
        }
        guard let batch else { return }
        // The headers were checked when numbered: parts can't fail to encode (a closed channel
        // just drops them, and they are sent again after the reconnect).
        try? connection.write(parts: batch.messages)
        resumption.sent(before: batch.next)
        if !batch.isAll { connection.channel.eventLoop.scheduleTask(in: Self.drainPause) { self.drain(onto: connection, resumption) } }
    }

    /// Waits until a connect may state the client's position (`ClientResume.stateForConnect`):
    /// rarely long, so looked at again every few milliseconds; `giveUp` throws to stop waiting.
    func statePosition(_ resumption: ClientResume, giveUp: () throws -> Void) async throws -> StatedPosition {
        while true {
            try giveUp()
            if let stated = resumption.stateForConnect() { return stated }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The events stream's `resume` and `epoch`; it skips its turn (throws) once the socket is
    /// open or the client closed: a socket that waited for this stream's greeting would wait on.
    func stateStreamPosition() async throws -> [(String, String)] {
        guard let resumption else { return [] }
        let stated = try await statePosition(resumption) {
            guard state.withLockedValue({ $0.connection == nil && !$0.isClosed }) else { throw CancellationError() }
        }
        state.withLockedValue { $0.streamStated = stated }
        return stated.query
    }

    /// Acknowledges delivered host positions every 32 messages, or 200 ms after the first owed.
    /// A host that reads nothing while it sends got one acknowledgement per 32 messages, each
    /// kept by the channel without bound: while the socket takes no more, the acknowledgement
    /// waits (checked every 200 ms) and goes out once, saying everything delivered meanwhile.
    /// Without a socket, or before its greeting, it waits too: handed on then, it was dropped
    /// and counted as sent, and the host kept what it covered until something else was owed.
    func acknowledgeWhenDue(_ resumption: ClientResume, force: Bool = false) {
        let socket = state.withLockedValue { state -> Bool? in
            // While a stream is read the socket's greeting is held: not taken in yet.
            state.isClosed ? nil : state.writeCursor != nil && state.fallback == nil && state.connection?.channel.isWritable == true
        }
        guard let socketTakesMore = socket else { return }
        switch resumption.dueAck(force: force, socketTakesMore: socketTakesMore) {
        case .now(let ack): sendAcknowledgement(ack)
        case .later: eventLoop.scheduleTask(in: ClientResume.ackWithin) { self.acknowledgeWhenDue(resumption, force: true) }
        case .no: break
        }
    }

    /// A bare `ack` on the socket; while it is down the next connect's `resume=` says the same.
    /// Not before the socket's greeting: owed on the last socket, the host would take it for a
    /// position of the epoch the greeting may have just begun (a reset), and release positions
    /// of it the client never read.
    private func sendAcknowledgement(_ ack: Message) {
        guard let connection = state.withLockedValue({ $0.writeCursor == nil ? nil : $0.connection }) else { return }
        _ = try? connection.send(ack)
    }
}
