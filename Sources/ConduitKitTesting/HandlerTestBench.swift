public import ConduitKit
public import ConduitWire
import Logging
public import NIOCore
public import NIOEmbedded
import Synchronization

/// One handler driven without a host, for fast unit tests: requests go straight to `handle`
/// (thrown errors become error replies, as in the host), replies and pushes are recorded,
/// client events are delivered when the test says, and time is a test clock: the handler's
/// event loop is NIO's `NIOAsyncTestingEventLoop`, which runs scheduled work only on
/// `advance(by:)`. Test what only real sockets show (framing, buffering across reconnects)
/// with `TestHost` from ConduitTesting.
public final class HandlerTestBench<Handler: ConduitHandler>: Sendable {
    public let handler: Handler
    public let pushes: RecordingPushSink
    /// The handler's event loop and the test clock.
    public let loop: NIOAsyncTestingEventLoop
    /// The route pattern the handler is mounted at (`test.*` unless given).
    public let mount: String
    private let context: HandlerContext
    private let log = ReplyLog()
    private let cancellations = CancellationRegistry()
    private let tokens = Atomic<Int>(0)
    /// What the handler's requests run from tasks, cancelled at `stop()` as the host does.
    private let tasks = RequestTasks()
    private let requestTimeout: Duration?

    /// `requestTimeout`: the deadline of a request answered from a task that names none (the
    /// host's `limits.requestTimeoutSeconds`, 60 s by default; nil: none).
    public init(options: Handler.Options, mount: String = "test.*", requestTimeout: Duration? = .seconds(60)) throws {
        self.requestTimeout = requestTimeout
        loop = NIOAsyncTestingEventLoop()
        pushes = RecordingPushSink()
        self.mount = mount
        context = HandlerContext(
            route: mount, logger: Logger(label: "conduit.test", factory: { _ in SwiftLogNoOpLogHandler() }),
            pushes: pushes, eventLoopGroup: loop)
        handler = try Handler(options: options, context: context)
    }

    /// Sends `operation` (relative to the mount; empty under an exact one) from `client` with a
    /// fresh token, which it returns; its replies are then `replies(to:)`.
    @discardableResult
    public func send(_ operation: String, headers: Headers = [:], payload: ByteBuffer = ByteBuffer(), from client: String = "1") -> String {
        let token = "t\(tokens.add(1, ordering: .relaxed).newValue)"
        let route = context.route(operation)
        var all = headers
        all.replaceOrAppend(HeaderName.route, route)
        all.replaceOrAppend(HeaderName.token, token)
        var request = Request(
            headers: all, payload: payload, route: route, operation: operation,
            client: ClientID(client) ?? ClientID("1")!, transport: .webSocket, eventLoop: loop)
        request.cancellations = cancellations
        let responder = Responder(
            destination: log, address: ReplyAddress(route: route, correlation: (HeaderName.token, token), received: request.received, counter: nil),
            tasks: tasks, inFlight: nil, defaultTimeout: requestTimeout, cancellations: cancellations)
        do {
            try handler.handle(request, responder: responder)
        } catch {
            responder.fail(ConduitError(converting: error))
        }
        return token
    }

    /// Everything answered to `token` so far.
    public func replies(to token: String) -> [Result<Reply, ConduitError>] {
        log.replies(to: token)
    }

    /// The first reply to `token`, waiting for it (running the test loop's due work meanwhile)
    /// for at most `timeout` of real time.
    public func reply(to token: String, timeout: Duration = .seconds(10)) async throws -> Result<Reply, ConduitError> {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let first = replies(to: token).first { return first }
            guard ContinuousClock.now < deadline else { throw BenchTimeout(token: token) }
            await loop.run()
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Cancels `token` as a client's `cancel:` would: what the handler registered runs, and the
    /// request is answered `CancelledError`. False when it could not be cancelled.
    @discardableResult
    public func cancel(_ token: String) -> Bool {
        guard cancellations.cancel(token) != nil else { return false }
        log.record(.failure(.cancelled("the request was cancelled by the client")), token: token)
        return true
    }

    /// Tells the handler about a client, as the host does when sockets open, close or expire.
    public func clientEvent(_ event: ClientEvent) {
        handler.clientEvent(event)
    }

    /// Moves the test clock: the handler's work scheduled on its loop within `amount` runs.
    public func advance(by amount: TimeAmount) async {
        await loop.advanceTime(by: amount)
    }

    public func start() async throws { try await handler.start() }

    public func stop() async {
        tasks.cancelAll()
        await handler.stop()
        await loop.shutdownGracefully()
    }
}

/// No reply came within the time `HandlerTestBench.reply(to:)` was given.
public struct BenchTimeout: Error, CustomStringConvertible {
    public let token: String
    public var description: String { "no reply to \(token) in time" }
}

/// The replies of a bench's requests, by token.
private final class ReplyLog: ReplyDestination {
    private let replies = Mutex<[String: [Result<Reply, ConduitError>]]>([:])

    /// Records what the client would receive: a reply over the framing's limits becomes the
    /// host's `InternalError`.
    func deliver(_ result: Result<Reply, ConduitError>, to request: ReplyAddress) {
        guard let token = request.correlation?.value else { return }
        if case .success(let reply) = result, case .failure(let refused) = reply.message(route: request.route, correlation: request.correlation) {
            return record(.failure(refused), token: token)
        }
        record(result, token: token)
    }

    func record(_ result: Result<Reply, ConduitError>, token: String) {
        replies.withLock { $0[token, default: []].append(result) }
    }

    func replies(to token: String) -> [Result<Reply, ConduitError>] {
        replies.withLock { $0[token] ?? [] }
    }
}
