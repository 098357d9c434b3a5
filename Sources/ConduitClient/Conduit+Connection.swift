import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

extension Conduit {
    /// Opens the socket (the seed's `connect`) and returns once it is open; a no-op when it
    /// is. With an IPC port, the socket server's current port is asked for first.
    public func connect() async throws {
        state.withLockedValue { $0.replaced = false }
        if let reconnecting = state.withLockedValue({ $0.reconnecting }) { return try await reconnecting.value }
        try await openSocket(isReconnect: false)
    }

    /// Reconnects with exponential backoff and jitter (the seed's `reconnect`): up to `retries`
    /// retries after the first attempt, each wait at most `timeout` (defaults: `backoff`, 32
    /// retries, 500 ms doubling to 30 s). Emits `open` and `reopen` on success, an `error` when
    /// it gives up. Joins a reconnect already running; a no-op while the socket is open.
    public func reconnect(retries: Int? = nil, timeout: Duration? = nil) async throws {
        var policy = backoff
        policy.retries = retries ?? policy.retries
        policy.maxDelay = timeout ?? policy.maxDelay
        state.withLockedValue { $0.replaced = false }
        try await startReconnect(policy).value
    }

    /// A reconnect a send starts while the socket is down, unless the host replaced it.
    func reconnectBySending() {
        guard !state.withLockedValue({ $0.replaced }) else { return }
        startReconnect()
    }

    /// The running reconnect, or a new one (detached from the caller, so it survives it).
    @discardableResult
    func startReconnect(_ policy: Backoff? = nil) -> Task<Void, any Error> {
        let policy = policy ?? backoff
        return state.withLockedValue { state in
            if let running = state.reconnecting { return running }
            guard !state.isClosed else { return Task { throw ConduitClientError(.closed, "the client was closed") } }
            guard state.connection == nil else { return Task {} }
            state.reconnectSerial += 1
            let serial = state.reconnectSerial
            let failedAlready = state.quickCloses
            let task = Task { try await self.reconnectLoop(policy, serial: serial, failedAlready: failedAlready) }
            state.reconnecting = task
            return task
        }
    }

    /// `failedAlready`: sockets that closed soon after they opened, counted as failed attempts
    /// (the first wait is as long as after that many).
    private func reconnectLoop(_ policy: Backoff, serial: Int, failedAlready: Int) async throws {
        defer {
            state.withLockedValue { state in
                if state.reconnectSerial == serial { state.reconnecting = nil }
            }
        }
        var lastError: any Error = ConduitClientError(.reconnectFailed, "no attempt made")
        for attempt in 0...max(0, policy.retries) {
            let failed = attempt + failedAlready
            if failed > 0 { try await Task.sleep(for: policy.delay(before: failed - 1)) }
            do {
                return try await openSocket(isReconnect: true)
            } catch let error as ConduitClientError where error.code == .closed {
                throw error
            } catch {
                lastError = error
            }
        }
        let failure = ConduitClientError(.reconnectFailed, "no socket after \(policy.retries + 1) attempts; the last error: \(lastError)")
        state.withLockedValue { $0.emit(.error(failure)) }
        throw failure
    }

    /// The attempt in flight, or a new one. Each made its own socket: `connect()` beside a
    /// reconnect (a send starts one) opened two for the id, the host let the later replace the
    /// earlier, and the client, keeping the later, was told "replaced" and stayed down.
    private func openSocket(isReconnect: Bool) async throws {
        let attempt = try state.withLockedValue { state throws -> Task<Void, any Error>? in
            guard !state.isClosed else { throw ConduitClientError(.closed, "the client was closed") }
            if let inFlight = state.attempt { return inFlight }
            guard state.connection == nil else { return nil }
            state.attemptSerial += 1
            let serial = state.attemptSerial
            let task = Task {
                defer {
                    self.state.withLockedValue { state in
                        if state.attemptSerial == serial { state.attempt = nil }
                    }
                }
                try await self.attemptSocket(isReconnect: isReconnect)
            }
            state.attempt = task
            return task
        }
        do {
            try await attempt?.value
        } catch {
            // Cut short by `close()`: whatever it failed with, it ended because of that.
            try refuseIfClosed()
            throw error
        }
    }

    /// One attempt: finds the port, opens the socket; `opened` makes it the current one.
    private func attemptSocket(isReconnect: Bool) async throws {
        let attempt = try state.withLockedValue { state throws -> (generation: Int, port: Int?)? in
            guard !state.isClosed else { throw ConduitClientError(.closed, "the client was closed") }
            guard state.connection == nil else { return nil }
            state.generation += 1
            return (state.generation, state.port)
        }
        guard let (generation, knownPort) = attempt else { return }
        let port = try await currentPort(known: knownPort)
        // Closed while it asked for the port: a socket opened now (to be closed at once) would
        // still replace one of the same id that another client opened meanwhile.
        try refuseIfClosed()
        let stated: StatedPosition? = if let resumption { try await statePosition(resumption) { try self.refuseIfClosed() } } else { nil }
        let callbacks = WebSocketConnection.Callbacks(
            opened: { connection in self.opened(connection, generation: generation, isReconnect: isReconnect) },
            arrived: { arrival in self.inbound(arrival) },
            failure: { error in self.report(error) },
            undecodable: { error in self.reportUndecodable(error) },
            closed: { code, reason in
                self.resumption?.settle(stated)
                self.socketClosed(generation: generation, code: code, reason: reason)
            }
        )
        do {
            try await WebSocketConnection.open(
                host: host, port: port, id: id, window: window, key: sharedKey, query: stated?.query ?? [],
                timeout: backoff.attemptTimeout, eventLoop: eventLoop, callbacks: callbacks
            )
        } catch let error as ConduitClientError {
            resumption?.settle(stated)
            throw error
        } catch {
            resumption?.settle(stated)
            throw ConduitClientError(.connectFailed, "can't connect to \(host):\(port): \(error)")
        }
        try refuseIfClosed()
    }

    private func refuseIfClosed() throws(ConduitClientError) {
        guard state.withLockedValue({ !$0.isClosed }) else { throw ConduitClientError(.closed, "the client was closed") }
    }

    /// The socket server's port: from IPC status when there is an IPC port (it changes after a
    /// pause/resume), else the one given.
    private func currentPort(known: Int?) async throws -> Int {
        if let ipc {
            do {
                let status = try await ipc.status()
                guard status.isActive, let port = status.port else {
                    throw ConduitClientError(.connectFailed, "the host's socket server is paused")
                }
                state.withLockedValue { $0.port = port }
                return port
            } catch let error as ConduitClientError where error.code == .ipcFailed && known != nil {
                // IPC unreachable: try the port we know.
            }
        }
        guard let known else { throw ConduitClientError(.connectFailed, "no port known: give the port, an IPC port or a runtime file") }
        return known
    }

    /// A socket that stays open this long was a success: the backoff starts over.
    static let stableSocket = Duration.seconds(5)

    /// On the event loop, before the socket's first message: the socket becomes current.
    private func opened(_ connection: WebSocketConnection, generation: Int, isReconnect: Bool) {
        let keep = state.withLockedValue { state in
            guard !state.isClosed, state.generation == generation else { return false }
            state.phase = .open(connection)
            // The reconnect that opened it is done: a close from now on starts a new one. (Left
            // to the loop's end, a close in between joined the finished loop, and the client
            // never came back: seen after a quick pause in a loaded full run.)
            state.reconnecting = nil
            // So is the attempt: a close before its task has ended would have the next reconnect
            // join it, end with it, and open nothing (seen in CI under load).
            state.attempt = nil
            state.openedAt = .now
            state.writeCursor = nil
            state.isDraining = false
            state.fallback?.socketIsBack()
            state.emit(.open)
            if isReconnect { state.emit(.reopen) }
            return true
        }
        if !keep { connection.close() }
    }

    private func socketClosed(generation: Int, code: UInt16?, reason: String) {
        var ended: [AsyncStream<ConduitEvent>.Continuation] = []
        let reconnect = state.withLockedValue { state -> Bool in
            guard state.generation == generation else { return false }
            guard !state.isClosed else {
                state.emit(.close(code: code, reason: reason, willReconnect: false))
                ended = state.takeSubscribers()
                return false
            }
            state.phase = .down
            // A newer socket with this id replaced this one: getting it back would only
            // replace that one in turn.
            state.replaced = code == 1000 && reason == "replaced"
            // Replaced, it did not fail: counted as a quick close, it made the reconnect that
            // takes the id back wait as after a failed attempt.
            if !state.replaced {
                let lasted = state.openedAt.map { $0.duration(to: .now) } ?? .zero
                state.quickCloses = lasted < Self.stableSocket ? state.quickCloses + 1 : 0
            }
            let again = autoReconnect && !state.replaced
            state.emit(.close(code: code, reason: reason, willReconnect: again))
            if again { startFallback(&state) }
            return again
        }
        for subscriber in ended { subscriber.finish() }
        if reconnect { startReconnect() }
    }

    // MARK: Delivery

    /// What the socket brought: held while a fallback stream is still being read.
    private func inbound(_ arrival: Arrival) {
        if resumption != nil, case .message(let message, _) = arrival, message.headers.isResumeControl(route: ResumeHeader.resumeRoute) {
            resendAfter(message)
        }
        let (held, pause) = state.withLockedValue { state -> (Bool, WebSocketConnection?) in
            guard state.fallback != nil else { return (false, nil) }
            return (true, state.held.hold(arrival, from: state.connection))
        }
        pause?.setReading(false)
        if !held, !deliver(arrival) { giveUpSocket() }
    }

    /// An `.error` event: what the host sent could not be read.
    private func report(_ error: ConduitClientError) {
        state.withLockedValue { $0.emit(.error(error)) }
    }

    /// As `report`, for a frame that did not decode: resume counts its position.
    private func reportUndecodable(_ error: ConduitClientError) {
        resumption?.undecodedFrame()
        report(error)
    }

    /// A message as below; a message dropped whole is an `.error` event. False when the socket
    /// or stream that brought it must be given up (resume: a position skipped ahead).
    @discardableResult
    func deliver(_ arrival: Arrival) -> Bool {
        switch arrival {
        case .message(let message, let parts):
            return deliver(message, parts: parts)
        case .dropped(let lastPart, let error):
            // Resume takes its position as received; a copy of one taken already is a duplicate,
            // its error told once.
            if let resumption {
                guard resumption.admitDropped(lastPart: lastPart) else { return true }
                acknowledgeWhenDue(resumption)
            }
            state.withLockedValue { $0.emit(.error(error)) }
            return true
        }
    }

    /// To the request waiting for its token, else to the receive handler and the event streams.
    /// `parts`: the frames it was joined from.
    private func deliver(_ message: Message, parts: Int) -> Bool {
        var message = message
        if let resumption {
            switch resumption.admit(message, parts: parts) {
            case .consumed:
                return true
            case .greeting(let reset, let lost):
                state.withLockedValue { state in
                    if reset { state.emit(.resumeReset) }
                    if lost > 0 { state.emit(.lost(count: lost)) }
                }
                return true
            case .skipped(let error):
                if let error { report(error) }
                return false
            case .deliver(let admitted):
                message = admitted
                acknowledgeWhenDue(resumption)
            }
        }
        handOut(message)
        return true
    }

    /// Closes the socket (1000, as the JavaScript client does) after a position that skipped
    /// ahead: the reconnect resumes from the last position received.
    private func giveUpSocket() {
        state.withLockedValue { $0.connection }?.close(reason: "a position skipped ahead")
    }

    /// A message past resume's admission: to the request waiting for its token, else to the
    /// event streams and the receive handler, one delivery at a time.
    func handOut(_ message: Message) {
        guard !pending.resolve(message) else { return }
        delivering.withLock {
            let receiver = state.withLockedValue { state in
                state.emit(.message(message))
                return state.receiver
            }
            receiver?(message)
        }
    }

    private func startFallback(_ state: inout ConnectionState) {
        if let fallback = state.fallback { return fallback.socketIsDown() }
        guard let ipc else { return }
        state.fallbackSerial += 1
        let serial = state.fallbackSerial
        state.fallback = FallbackReceiver(
            endpoint: ipc, id: id, query: { try await self.stateStreamPosition() }, deliver: { arrival in self.deliver(arrival) },
            failure: { error in self.reportUndecodable(error) },
            streamEnded: {
                self.resumption?.settle(self.state.withLockedValue { $0.streamStated })
                try? await self.releaseHeld(serial, stopping: false).get()
            },
            finished: { self.releaseHeld(serial, stopping: true) }
        )
    }

    /// A stream of receiver `serial` ended: what the socket brought meanwhile follows it, on the
    /// socket's event loop so nothing from the socket overtakes it. Now, not only once the
    /// receiver stops (`stopping`): a socket that came back and went down again while the
    /// stream was read brought messages older than anything the next stream carries, and they
    /// waited behind it.
    @discardableResult
    private func releaseHeld(_ serial: Int, stopping: Bool) -> EventLoopFuture<Void> {
        eventLoop.submit {
            let (held, paused) = self.state.withLockedValue { state -> ([Arrival], WebSocketConnection?) in
                guard state.fallbackSerial == serial, state.fallback != nil else { return ([], nil) }
                if stopping { state.fallback = nil }
                return state.held.release()
            }
            // Every one is delivered (a later socket's greeting among them clears a skip); after
            // a position that skipped ahead, the socket resumes from the last one received.
            var skipped = false
            for arrival in held {
                if !self.deliver(arrival) { skipped = true }
            }
            if skipped { self.giveUpSocket() }
            paused?.setReading(true)
            guard stopping else { return }
            // The socket that stopped the receiver closed before this ran: it told a receiver
            // that had already left its loop to read on. Read in its place, after what that one
            // held, else nothing read the host's stream until a socket came back.
            self.state.withLockedValue { state in
                if state.connection == nil, !state.isClosed, state.fallback == nil, self.autoReconnect, !state.replaced { self.startFallback(&state) }
            }
        }
    }
}
