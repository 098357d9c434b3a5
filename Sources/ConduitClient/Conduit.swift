public import ConduitWire
public import NIOCore
import NIOConcurrencyHelpers
import NIOPosix

/// A Conduit client (SPEC §7), with the seed's `oro:conduit` API: `connect`, `reconnect`,
/// `receive`, `send` → `Bool`, `close`, events `open`/`message`/`error`/`close`/`reopen`, plus
/// `request` with token correlation and a fallback to IPC while the socket is down.
///
/// After an unexpected close it reconnects by itself (asking IPC for the socket server's
/// current port, which changes after a pause/resume) and reads pushes from the IPC fallback
/// stream until the socket is back. `close()` ends all of that.
public final class Conduit: Sendable {
    public let id: String
    public let window: String
    /// The host's IPC listener, when its port is known: status, pause/resume, key rotation.
    public let ipc: IPCEndpoint?
    public let backoff: Backoff
    /// Reconnect after an unexpected close (and read pushes over IPC meanwhile).
    public let autoReconnect: Bool
    let host: String
    private let key: String
    let eventLoop: any EventLoop
    let state: NIOLockedValueBox<ConnectionState>
    let pending = PendingRequests()
    /// Held while the receive handler and the event streams are given a message: deliveries
    /// come from the socket's event loop, the fallback stream's task and a `sendOrFallback`
    /// caller's task, and the handler must get them one at a time.
    let delivering = NIOLock()
    /// Resume (SPEC §9) when asked for: positions, acknowledgements, replay, de-duplication.
    let resumption: ClientResume?

    /// A client for the host at `address`; nothing happens until `connect()`.
    /// - Parameters:
    ///   - id: the client id (a decimal uint64 or 1–64 of `[A-Za-z0-9._-]`); keep it stable
    ///     across reconnects, so the host resumes the id's streams and buffered pushes.
    ///   - window: the top-window id, the second path segment.
    ///   - resume: every message exactly once across reconnects, replacement, pause/resume and
    ///     the fallback stream (SPEC §9): what the socket could not carry is sent again, what
    ///     arrives twice is dropped, and a reset or lost messages are reported as events.
    ///     `send` then keeps a message while the socket is down (and returns true) instead of
    ///     refusing it.
    public init(
        id: String, address: HostAddress, window: String = "0", backoff: Backoff = Backoff(),
        autoReconnect: Bool = true, resume: Bool = false, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.id = id
        self.window = window
        self.host = address.host
        self.key = address.sharedKey
        self.ipc = address.ipcPort.map { IPCEndpoint(host: address.ipcHost, port: $0, sharedKey: address.sharedKey, group: group) }
        self.backoff = backoff
        self.autoReconnect = autoReconnect
        self.resumption = resume ? ClientResume() : nil
        self.eventLoop = group.next()
        var initial = ConnectionState()
        initial.port = address.port
        self.state = NIOLockedValueBox(initial)
    }

    /// `new Conduit({ id, sharedKey })`: a host on `host`, its socket port and/or IPC port.
    public convenience init(
        id: String, sharedKey: String, host: String = "127.0.0.1", port: Int? = nil, ipcPort: Int? = nil,
        window: String = "0", backoff: Backoff = Backoff(), autoReconnect: Bool = true, resume: Bool = false
    ) {
        self.init(
            id: id, address: HostAddress(host: host, port: port, ipcPort: ipcPort, sharedKey: sharedKey),
            window: window, backoff: backoff, autoReconnect: autoReconnect, resume: resume
        )
    }

    /// The key for new sockets: the IPC endpoint's (it follows `setSharedKey`), else the given one.
    var sharedKey: String { ipc?.sharedKey ?? key }

    /// The socket server's port as last found (it changes after a pause/resume).
    public var port: Int? { state.withLockedValue { $0.port } }

    /// Resume: host messages dropped as already delivered (0 without `resume`).
    public var resumeDuplicates: Int { resumption?.duplicates ?? 0 }

    /// True while the socket is open.
    public var isOpen: Bool { state.withLockedValue { $0.connection?.channel.isActive ?? false } }

    // MARK: Receiving

    /// Sets the one message handler (the seed's `receive`): a later call replaces it. It gets
    /// pushes and replies no `request` is waiting for, parts joined, in order, one at a time.
    public func receive(_ handler: @escaping @Sendable (Message) -> Void) {
        state.withLockedValue { $0.receiver = handler }
    }

    /// A new stream of this client's events from now on; several may be open at once. It ends
    /// after `close()`. What it holds unread is bounded by `maxBufferedBytes`: past it, events
    /// are left out and counted (`.eventsLeftOut`).
    public func events(maxBufferedBytes: Int = 8 << 20) -> ConduitEvents {
        let (stream, continuation) = AsyncStream<ConduitEvent>.makeStream()
        let subscriber = EventsSubscriber(continuation: continuation, maxBufferedBytes: maxBufferedBytes)
        let events = ConduitEvents(stream: stream, subscriber: subscriber)
        let number = state.withLockedValue { state -> Int? in
            guard !state.isClosed else { return nil }
            state.nextSubscriber += 1
            state.subscribers[state.nextSubscriber] = subscriber
            return state.nextSubscriber
        }
        guard let number else {
            continuation.finish()
            return events
        }
        continuation.onTermination = { [state] _ in
            _ = state.withLockedValue { $0.subscribers.removeValue(forKey: number) }
        }
        return events
    }

    // MARK: Sending

    /// Sends one message (the seed's `send`): false when the socket is not open, or when 8 MiB
    /// sent on it are not written yet (a host that reads slowly or not at all); then use the
    /// fallback (`sendOrFallback`, or `request`, which falls back by itself), or try later.
    /// Payloads of any size are split into parts, but a digest check's or a cancellation's
    /// must fit one.
    /// Throws when the headers are over the limits (SPEC §1), or for such a payload.
    @discardableResult
    public func send(_ headers: Headers, payload: ByteBuffer = ByteBuffer()) throws(WireError) -> Bool {
        try send(Message(headers: headers, payload: payload), pastBounds: false)
    }

    /// `pastBounds`: taken though the socket holds 8 MiB unwritten, or the resume window is full.
    private func send(_ message: Message, pastBounds: Bool) throws(WireError) -> Bool {
        try message.validateStandsAloneInOneFrame()
        if let resumption { return try sendNumbered(message, resumption, pastWindow: pastBounds) }
        guard let connection = state.withLockedValue({ $0.connection }), connection.channel.isActive else { return false }
        return try connection.send(message, pastBound: pastBounds)
    }

    /// A cancellation goes out past `send`'s bounds, up to 64 KiB further: refused there, it
    /// left the handler's work for the request running on the host.
    private func sendCancel(_ token: String) {
        _ = try? send(Message(headers: [HeaderName.cancel: token]), pastBounds: true)
    }

    /// Sends `route` with a fresh `token` and returns the reply to it. While the socket is down
    /// the route is invoked over IPC instead (and a reconnect starts). An error reply is thrown
    /// as `ConduitReplyError` (type and message as the host sent them); no reply within
    /// `timeout`: `ConduitClientError.timedOut`. A timeout, or cancelling the calling task
    /// (which throws `CancellationError`), cancels the request on the host too
    /// (`cancel: <token>`), which stops the handler's work for it.
    public func request(
        route: String, headers: Headers = [:], payload: ByteBuffer = ByteBuffer(), timeout: Duration = .seconds(30)
    ) async throws -> Message {
        var headers = headers
        headers.replaceOrAppend(HeaderName.route, route)
        let token = pending.register(timeout: timeout, timers: eventLoop)
        headers.replaceOrAppend(HeaderName.token, token)
        var overIPC: Task<Void, Never>?
        do {
            if try !send(headers, payload: payload) {
                // On its own: awaited here, the exchange (up to the host's reply timeout, 60 s)
                // came before the wait, which alone ends at `timeout` or on `close()`.
                overIPC = Task { [pending, headers] in
                    do {
                        pending.settle(token, .success(try await self.invokeOverIPC(route: route, headers: headers, payload: payload)))
                    } catch {
                        pending.fail(token, error)
                    }
                }
            }
        } catch {
            pending.fail(token, error)
        }
        defer { overIPC?.cancel() }
        // A cancelled caller cancels the request on the host too (SPEC §8).
        let reply: Message
        do {
            reply = try await withTaskCancellationHandler {
                try await pending.wait(for: token)
            } onCancel: {
                sendCancel(token)
            }
        } catch let error as ConduitClientError where error.code == .timedOut {
            // So does a timeout: the request ran on with nobody waiting for its reply, or,
            // kept while the socket was down (resume), ran after the reconnect.
            sendCancel(token)
            throw error
        }
        if let error = ConduitReplyError(reply: reply) { throw error }
        return reply
    }

    /// Sends over the socket, or, when `send` would return false, invokes the message's route
    /// over IPC (`POST /<route>?<headers>`, body = payload) and starts a reconnect in the
    /// background (the seed's fallback path). An IPC reply is delivered like one from the
    /// socket (to `receive` and the events), so callers handle replies in one place.
    @discardableResult
    public func sendOrFallback(_ headers: Headers, payload: ByteBuffer = ByteBuffer()) async throws -> Transport {
        if try send(headers, payload: payload) { return .socket }
        guard let route = headers.route else {
            throw ConduitClientError(.invalidMessage, "only a message with a route can be sent over IPC")
        }
        // Not numbered by the host: its position and acknowledgement are not resume's.
        handOut(try await invokeOverIPC(route: route, headers: headers, payload: payload))
        return .ipc
    }

    /// Which way `sendOrFallback` sent a message.
    public enum Transport: Sendable {
        case socket
        case ipc
    }

    private func invokeOverIPC(route: String, headers: Headers, payload: ByteBuffer) async throws -> Message {
        guard !state.withLockedValue({ $0.isClosed }) else { throw ConduitClientError(.closed, "the client was closed") }
        guard let ipc else {
            throw ConduitClientError(.notConnected, "the socket is not open and no IPC port is known")
        }
        reconnectBySending()
        var headers = headers
        if resumption != nil {
            // `pos` and `ack` are the connection's (SPEC §9), as on the socket: the host echoed an
            // application's own, and they were taken for its positions.
            headers.removeAll(ResumeHeader.position)
            headers.removeAll(ResumeHeader.ack)
        }
        return try await ipc.reply(route: route, headers: headers, payload: payload, id: id)
    }

    // MARK: Closing

    /// Closes the socket for good (the seed's `close`): no more reconnects or fallback reads;
    /// pending requests fail with `closed`; the `receive` handler is let go (nothing more
    /// reaches it); event streams end after the `close` event.
    public func close() {
        let (connection, reconnecting, attempt, fallback, ended) = state.withLockedValue { state in
            defer {
                state.phase = .closed
                state.reconnecting = nil
                state.attempt = nil
                state.fallback = nil
                state.held = HeldArrivals()
                // Let go of, as the JS client does: a handler that captured this client kept it
                // (and its resume log) alive, and heard a late IPC reply or fallback message.
                state.receiver = nil
            }
            // With a socket, the streams end after its close event.
            let ended = state.connection == nil ? state.takeSubscribers() : []
            return (state.connection, state.reconnecting, state.attempt, state.fallback, ended)
        }
        for subscriber in ended { subscriber.finish() }
        reconnecting?.cancel()
        // A connect asking IPC for the port ends now, not once the host answers or IPC's
        // timeout (60 s) passes.
        attempt?.cancel()
        fallback?.cancel()
        pending.failAll(ConduitClientError(.closed, "the client was closed"))
        connection?.close()
    }
}
