public import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A NATS client on SwiftNIO: publish, subscribe (with queue groups), request/reply over one
/// wildcard inbox, headers, TLS and credentials. It reconnects by itself with jittered
/// backoff and restores every subscription; while it is down, publishing and requests fail at
/// once with `NATSError.notConnected` instead of queueing without bound.
public final class NATSClient: Sendable {
    public let options: NATSClientOptions
    private let group: any EventLoopGroup
    private let inboxPrefix: String
    private let state: Mutex<State>
    private let tls = Mutex<NIOSSLContext?>(nil)

    /// The subscription id of the inbox every request's answer comes to.
    private static let inboxSubscription = 1

    struct Connection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<NATSConnectionHandler>

        func send(_ operation: ClientOperation) {
            if channel.eventLoop.inEventLoop {
                handler.value.send(operation)
            } else {
                channel.eventLoop.execute { handler.value.send(operation) }
            }
        }
    }

    private struct Subscriber {
        let subject: String
        let queue: String?
        let deliver: @Sendable (NATSMessage) -> Void
        /// Told when the client closes (a `messages(on:)` sequence ends then).
        let closed: (@Sendable () -> Void)?
    }

    private struct Waiter {
        let subject: String
        let completion: @Sendable (Result<NATSMessage, NATSError>) -> Void
        var timer: Scheduled<Void>?
    }

    private struct State {
        var connection: Connection?
        var info: NATSServerInfo?
        var isStarted = false
        var isClosed = false
        var attempt = 0
        /// When the current connection became ready; nil while it is not.
        var readyAt: ContinuousClock.Instant?
        var isReady: Bool { readyAt != nil }
        var everConnected = false
        var subscribers: [Int: Subscriber] = [:]
        var nextSubscription = 2
        var waiters: [UInt64: Waiter] = [:]
        var nextRequest: UInt64 = 0
        var readyWaiters: [CheckedContinuation<Void, any Error>] = []
        var statistics = NATSStatistics()
        var lastError: String?
        /// The configured server first, then those its cluster announced; tried in turn.
        var servers: [ServerAddress]
        var nextServer = 0
    }

    public init(options: NATSClientOptions, eventLoopGroup: any EventLoopGroup) {
        self.options = options
        self.group = eventLoopGroup
        self.inboxPrefix = "_INBOX.\(UInt64.random(in: 1...UInt64.max))."
        self.state = Mutex(State(servers: [ServerAddress(host: options.host, port: options.port)]))
    }

    // MARK: Observing

    public var connectionState: NATSConnectionState {
        state.withLock { $0.isClosed ? .closed : $0.isReady ? .connected : .connecting }
    }

    public var statistics: NATSStatistics { state.withLock { $0.statistics } }
    /// The last thing that went wrong (connect refused, authorization, protocol), for diagnostics.
    public var lastError: String? { state.withLock { $0.lastError } }
    public var serverInfo: NATSServerInfo? { state.withLock { $0.info } }
    /// Where the client connects, in the order it tries: the configured server, then the ones
    /// its cluster announced (`connect_urls`), so losing one server moves it to another.
    public var knownServers: [String] { state.withLock { $0.servers.map(\.description) } }

    // MARK: Lifecycle

    /// Starts connecting, in the background; it keeps trying until `close`.
    public func start() {
        let first = state.withLock { state in
            defer { state.isStarted = true }
            return !state.isStarted && !state.isClosed
        }
        if first { attemptConnection() }
    }

    /// Starts connecting and returns once connected (attempts that fail are retried).
    public func connect() async throws {
        start()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let now: Result<Void, NATSError>? = state.withLock { state in
                if state.isClosed { return .failure(.closed) }
                if state.isReady { return .success(()) }
                state.readyWaiters.append(continuation)
                return nil
            }
            if let now { continuation.resume(with: now) }
        }
    }

    public func close() async {
        // The subscribers go too: kept, a `messages(on:)` sequence's consumer waited for ever, and
        // the sequence (which holds its subscription, so the client) and the client held each other.
        let (connection, waiters, readyWaiters, subscribers) = state.withLock { state in
            state.isClosed = true
            state.readyAt = nil
            defer { state.waiters = [:]; state.readyWaiters = []; state.connection = nil; state.subscribers = [:] }
            return (state.connection, state.waiters.values, state.readyWaiters, state.subscribers.values)
        }
        for waiter in waiters { waiter.timer?.cancel(); waiter.completion(.failure(.closed)) }
        for waiter in readyWaiters { waiter.resume(throwing: NATSError.closed) }
        for subscriber in subscribers { subscriber.closed?() }
        try? await connection?.channel.close()
    }

    // MARK: Publishing and subscribing

    public func publish(_ subject: String, replyTo: String? = nil, headers: NATSHeaders = [:], payload: ByteBuffer) throws(NATSError) {
        try Self.validate(subject: subject, publishing: true)
        if let replyTo { try Self.validate(subject: replyTo, publishing: true) }
        try headers.validate()
        let bytes = (headers.isEmpty ? 0 : headers.encodedBytes) + payload.readableBytes
        let connection = try state.withLock { state throws(NATSError) -> Connection in
            guard !state.isClosed else { throw .closed }
            guard state.isReady, let connection = state.connection, let info = state.info else { throw .notConnected }
            guard bytes <= info.maxPayload else { throw .payloadTooLarge(bytes: bytes, limit: info.maxPayload) }
            // Writability is NIO's view of the bytes waiting to be written (the high-water mark).
            guard connection.channel.isWritable else { throw .outboundFull(limit: options.maxPendingBytes) }
            state.statistics.messagesOut += 1
            // Payload bytes, as `bytesIn` counts them (the bound above is NATS's, headers in).
            state.statistics.bytesOut += payload.readableBytes
            return connection
        }
        connection.send(.publish(subject: subject, replyTo: replyTo, headers: headers, payload: payload))
    }

    /// Calls `deliver` for each message on `subject` (wildcards allowed), on the connection's
    /// event loop: it must not block. With `queue`, each message goes to one member of the
    /// group. The subscription survives reconnects until `unsubscribe`.
    public func subscribe(_ subject: String, queue: String? = nil, _ deliver: @escaping @Sendable (NATSMessage) -> Void) throws(NATSError) -> NATSSubscription {
        try subscribe(subject, queue: queue, whenClosed: nil, deliver)
    }

    private func subscribe(
        _ subject: String, queue: String?, whenClosed closed: (@Sendable () -> Void)?, _ deliver: @escaping @Sendable (NATSMessage) -> Void
    ) throws(NATSError) -> NATSSubscription {
        try Self.validate(subject: subject)
        if let queue { try Self.validate(subject: queue) }
        let (sid, connection) = try state.withLock { state throws(NATSError) in
            guard !state.isClosed else { throw .closed }
            let sid = state.nextSubscription
            state.nextSubscription += 1
            state.subscribers[sid] = Subscriber(subject: subject, queue: queue, deliver: deliver, closed: closed)
            return (sid, state.connection)
        }
        // Sent now if a connection is open; otherwise the next handshake restores it.
        connection?.send(.subscribe(subject: subject, queue: queue, subscription: sid))
        return NATSSubscription(client: self, id: sid)
    }

    /// The messages on `subject` as an async sequence, buffered up to `bufferBytes`: past that
    /// a slow consumer loses the newest messages, counted in `slowConsumerDrops`.
    public func messages(on subject: String, queue: String? = nil, bufferBytes: Int = 8 << 20) throws(NATSError) -> NATSMessages {
        let messages = NATSMessages(limitBytes: bufferBytes) { [weak self] in
            self?.state.withLock { $0.statistics.slowConsumerDrops += 1 }
        }
        messages.subscription = try subscribe(subject, queue: queue, whenClosed: { messages.finish() }) { messages.offer($0) }
        return messages
    }

    func unsubscribe(_ sid: Int) {
        let connection = state.withLock { state in
            state.subscribers.removeValue(forKey: sid) == nil ? nil : state.connection
        }
        connection?.send(.unsubscribe(subscription: sid))
    }

    /// Returns once the server has processed everything sent before it (a PING answered):
    /// a subscription made is in place then. Throws `notConnected` when the connection isn't
    /// ready, `disconnected` when it drops first.
    public func flush() async throws {
        let connection = try state.withLock { state throws(NATSError) -> Connection in
            guard !state.isClosed else { throw .closed }
            guard state.isReady, let connection = state.connection else { throw .notConnected }
            return connection
        }
        let promise = connection.channel.eventLoop.makePromise(of: Void.self)
        connection.channel.eventLoop.execute { connection.handler.value.flush(promise) }
        try await promise.futureResult.get()
    }

    // MARK: Request/reply

    /// Publishes a request and waits for the first answer. Throws `noResponders` at once when
    /// nobody listens, `timedOut` after `timeout`, `notConnected`/`disconnected` when the
    /// connection is (or goes) down, `CancellationError` when the task is cancelled.
    public func request(_ subject: String, headers: NATSHeaders = [:], payload: ByteBuffer, timeout: Duration) async throws -> NATSMessage {
        let token = newRequestToken()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                startRequest(token, subject: subject, headers: headers, payload: payload, timeout: timeout) { result in
                    continuation.resume(with: result.mapError { error -> any Error in error == .cancelled ? CancellationError() : error })
                }
            }
        } onCancel: {
            finishRequest(token, with: .failure(.cancelled))
        }
    }

    /// The same without a task: `completion` is called once, on an event loop, with the answer
    /// or the error. The cheapest way to make many requests; `cancel()` on the result ends one
    /// early (with `NATSError.cancelled`).
    @discardableResult
    public func request(
        _ subject: String, headers: NATSHeaders = [:], payload: ByteBuffer, timeout: Duration,
        completion: @escaping @Sendable (Result<NATSMessage, NATSError>) -> Void
    ) -> NATSPendingRequest {
        let token = newRequestToken()
        startRequest(token, subject: subject, headers: headers, payload: payload, timeout: timeout, completion: completion)
        return NATSPendingRequest(client: self, token: token)
    }

    private func newRequestToken() -> UInt64 {
        state.withLock { state in
            state.nextRequest += 1
            return state.nextRequest
        }
    }

    private func startRequest(
        _ token: UInt64, subject: String, headers: NATSHeaders, payload: ByteBuffer, timeout: Duration,
        completion: @escaping @Sendable (Result<NATSMessage, NATSError>) -> Void
    ) {
        // The timer runs on the connection's own loop, where the answer arrives and cancels it.
        let loop = state.withLock { state in
            state.waiters[token] = Waiter(subject: subject, completion: completion)
            return state.connection?.channel.eventLoop
        }
        do {
            try publish(subject, replyTo: "\(inboxPrefix)\(token)", headers: headers, payload: payload)
        } catch {
            return finishRequest(token, with: .failure(error))
        }
        let timer = (loop ?? group.next()).scheduleTask(in: TimeAmount(timeout)) { [weak self] in
            self?.state.withLock { $0.statistics.requestsTimedOut += $0.waiters[token] == nil ? 0 : 1 }
            self?.finishRequest(token, with: .failure(.timedOut(subject: subject)))
        }
        let answered = state.withLock { state in
            guard state.waiters[token] != nil else { return true }
            state.waiters[token]!.timer = timer
            return false
        }
        if answered { timer.cancel() }
    }

    /// Completes request `token`, once.
    func finishRequest(_ token: UInt64, with result: Result<NATSMessage, NATSError>) {
        guard let waiter = state.withLock({ $0.waiters.removeValue(forKey: token) }) else { return }
        waiter.timer?.cancel()
        waiter.completion(result)
    }

    // MARK: From the connection (on its event loop)

    func received(_ message: NATSMessage, subscription sid: Int) {
        let subscriber = state.withLock { state in
            state.statistics.messagesIn += 1
            state.statistics.bytesIn += message.payload.readableBytes
            return sid == Self.inboxSubscription ? nil : state.subscribers[sid]
        }
        if let subscriber { return subscriber.deliver(message) }
        guard sid == Self.inboxSubscription, message.subject.hasPrefix(inboxPrefix),
              let token = UInt64(message.subject.dropFirst(inboxPrefix.utf8.count)) else { return }
        if message.status == 503 {
            let subject = state.withLock { state in
                state.statistics.noResponders += 1
                return state.waiters[token]?.subject ?? ""
            }
            finishRequest(token, with: .failure(.noResponders(subject: subject)))
        } else {
            finishRequest(token, with: .success(message))
        }
    }

    /// A message whose headers could not be read is dropped, counted, and its error kept; a
    /// reply to a request fails the request at once rather than at its timeout.
    func receivedMalformed(subject: String, subscription sid: Int, _ error: NATSError) {
        state.withLock { state in
            state.statistics.malformedMessages += 1
            state.lastError = "\(error)"
        }
        guard sid == Self.inboxSubscription, subject.hasPrefix(inboxPrefix),
              let token = UInt64(subject.dropFirst(inboxPrefix.utf8.count)) else { return }
        finishRequest(token, with: .failure(error))
    }

    /// The server's INFO came: the operations that restore the inbox and every subscription.
    func connectionOpened(_ channel: any Channel, handler: NATSConnectionHandler, info: NATSServerInfo) -> [ClientOperation] {
        state.withLock { state in
            state.connection = Connection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            state.info = info
            Self.learn(info.connectURLs, into: &state.servers)
            return [.subscribe(subject: "\(inboxPrefix)*", queue: nil, subscription: Self.inboxSubscription)]
                + state.subscribers.sorted { $0.key < $1.key }.map { .subscribe(subject: $0.value.subject, queue: $0.value.queue, subscription: $0.key) }
        }
    }

    func connectionReady(_ channel: any Channel) {
        let (waiters, isCurrent) = state.withLock { state in
            guard state.connection?.channel === channel, !state.isClosed else { return ([CheckedContinuation<Void, any Error>](), false) }
            state.readyAt = .now
            if state.everConnected { state.statistics.reconnects += 1 }
            state.everConnected = true
            defer { state.readyWaiters = [] }
            return (state.readyWaiters, true)
        }
        if !isCurrent { channel.close(promise: nil) }
        for waiter in waiters { waiter.resume() }
    }

    func infoUpdated(_ info: NATSServerInfo) {
        state.withLock { state in
            state.info = info
            Self.learn(info.connectURLs, into: &state.servers)
        }
    }

    func connectionLost(_ channel: any Channel) {
        let (waiters, reconnect) = state.withLock { state in
            guard state.connection?.channel === channel || state.connection == nil else { return ([Waiter](), false) }
            state.connection = nil
            // Reset only by a connection that stayed up: reset at each handshake, a server that
            // closes every connection once it is ready was reconnected to at once, without end.
            if let readyAt = state.readyAt, readyAt.duration(to: .now) >= options.maxReconnectDelay { state.attempt = 0 }
            state.readyAt = nil
            // The configured server is tried first again, then those its cluster announced.
            state.nextServer = 0
            defer { state.waiters = [:] }
            return (Array(state.waiters.values), !state.isClosed)
        }
        for waiter in waiters { waiter.timer?.cancel(); waiter.completion(.failure(.disconnected)) }
        if reconnect { scheduleReconnect() }
    }

    func record(error: any Error) {
        state.withLock { $0.lastError = "\(error)" }
    }

    func tlsContext() throws -> NIOSSLContext {
        try tls.withLock { context in
            if let context { return context }
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile = options.caFile { configuration.trustRoots = .file(caFile) }
            let made = try NIOSSLContext(configuration: configuration)
            context = made
            return made
        }
    }

    // MARK: Connecting

    private func attemptConnection() {
        let options = options
        let server = state.withLock { state -> ServerAddress? in
            // A reconnect scheduled before `close` connected after it, to whatever listened on
            // the port by then (another test's server, in a full run).
            guard !state.isClosed else { return nil }
            // The list may have shrunk since (an INFO that announced fewer servers).
            let next = state.nextServer % state.servers.count
            state.nextServer = (next + 1) % state.servers.count
            return state.servers[next]
        }
        guard let server else { return }
        ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(options.connectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: options.maxPendingBytes / 2, high: options.maxPendingBytes))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(ByteToMessageHandler(ServerOperationDecoder(maxControlLineBytes: options.maxControlLineBytes)))
                    try pipeline.addHandler(MessageToByteHandler(ClientOperationEncoder()))
                    try pipeline.addHandler(NATSConnectionHandler(client: self, options: options, server: server))
                }
            }
            .connect(host: server.host, port: server.port)
            .whenFailure { [self] error in
                record(error: error)
                scheduleReconnect()
            }
    }

    private func scheduleReconnect() {
        let attempt: Int? = state.withLock { state in
            guard !state.isClosed else { return nil }
            defer { state.attempt += 1 }
            return state.attempt
        }
        guard let attempt else { return }
        let ceiling = min(options.initialReconnectDelay * (1 << min(attempt, 20)), options.maxReconnectDelay)
        group.next().scheduleTask(in: TimeAmount(ceiling * Double.random(in: 0.5...1.0))) { [weak self] in
            self?.attemptConnection()
        }
    }

    /// The most servers the client knows: a server announcing new addresses without end (each
    /// `INFO` up to a control line's length) grew the list, and the time to search it under
    /// the client's lock, without limit.
    static let maxKnownServers = 64

    /// The configured server (first) and those the cluster announced last, up to
    /// `maxKnownServers`: an address no longer announced is forgotten. Kept, addresses once
    /// announced and unreachable since were each tried for their connect timeout on every loss.
    private static func learn(_ announced: [String], into servers: inout [ServerAddress]) {
        var known = [servers[0]]
        for server in announced.compactMap(ServerAddress.init(announced:)) where !known.contains(server) {
            guard known.count < maxKnownServers else { break }
            known.append(server)
        }
        servers = known
    }

    /// The longest subject sent. A server closes the connection on a control line past its
    /// `max_control_line` (nats-server: 4,096 bytes), failing every request waiting on it: a
    /// client's long route made into a subject took the route down for everyone.
    static let maxSubjectBytes = 1024

    /// `publishing`: wildcards (`*` and `>` as tokens) are for subscribing; NATS refuses them
    /// in a subject published to, and a route made into one went out as a wildcard.
    public static func validate(subject: String, publishing: Bool = false) throws(NATSError) {
        guard !subject.isEmpty, subject.utf8.count <= maxSubjectBytes, subject.utf8.allSatisfy({ $0 > 32 && $0 != 127 }),
              !subject.hasPrefix("."), !subject.hasSuffix("."), !subject.contains("..")
        else { throw .invalidSubject(subject) }
        guard !publishing || !hasWildcard(subject) else { throw .invalidSubject(subject) }
    }

    /// A token that is `*` or `>` alone, found in one pass over the bytes (it runs on every
    /// publish: a split into tokens allocated an array each time).
    private static func hasWildcard(_ subject: String) -> Bool {
        var tokenLength = 0
        var wildcardAlone = false
        for byte in subject.utf8 {
            if byte == UInt8(ascii: ".") {
                if wildcardAlone { return true }
                tokenLength = 0
                continue
            }
            tokenLength += 1
            wildcardAlone = tokenLength == 1 && (byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">"))
        }
        return wildcardAlone
    }
}
