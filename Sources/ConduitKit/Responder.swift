public import ConduitWire
public import NIOCore
import Synchronization

/// Sends replies to one request. Safe to use from any thread, any number of times (every
/// reply carries the request's route and token); a handler that has nothing to answer
/// simply doesn't call it.
public struct Responder: Sendable {
    private let destination: any ReplyDestination
    private let address: ReplyAddress
    private let tasks: RequestTasks?
    private let inFlight: InFlightLimit?
    /// The request's encoded size, which it holds of the budget while it runs.
    private let requestBytes: Int
    private let defaultTimeout: Duration?
    /// The connection's cancellable requests: a cancelled request's replies are not sent.
    private let cancellations: CancellationRegistry?

    /// Made by the host (or by a test) with the function that delivers a reply. `tasks`
    /// tracks `respond`'s tasks so stopping the route cancels them; `inFlight` bounds the
    /// connection's running ones; `defaultTimeout` applies when `respond` names none.
    public init(
        tasks: RequestTasks? = nil, inFlight: InFlightLimit? = nil, defaultTimeout: Duration? = nil,
        _ sink: @escaping @Sendable (Result<Reply, ConduitError>) -> Void
    ) {
        self.init(
            destination: ClosureDestination(sink: sink), address: ReplyAddress(route: "", correlation: nil, received: .now(), counter: nil),
            tasks: tasks, inFlight: inFlight, defaultTimeout: defaultTimeout)
    }

    /// The host's responder: replies go to `destination`, addressed to the request.
    package init(
        destination: any ReplyDestination, address: ReplyAddress, tasks: RequestTasks?, inFlight: InFlightLimit?, defaultTimeout: Duration?,
        cancellations: CancellationRegistry? = nil, requestBytes: Int = 0
    ) {
        self.destination = destination
        self.address = address
        self.tasks = tasks
        self.inFlight = inFlight
        self.requestBytes = requestBytes
        self.defaultTimeout = defaultTimeout
        self.cancellations = cancellations
    }

    public func reply(_ reply: Reply) { send(.success(reply)) }

    public func reply(headers: Headers = [:], payload: ByteBuffer = ByteBuffer()) {
        send(.success(Reply(headers: headers, payload: payload)))
    }

    /// Replies `{"data": value}`; an unencodable value becomes an `InternalError`.
    public func reply(json value: some Encodable) {
        send(Reply.jsonOutcome(value))
    }

    public func fail(_ error: ConduitError) { send(.failure(error)) }

    private func send(_ result: Result<Reply, ConduitError>) {
        if let cancellations, cancellations.tracksAny, let token = address.correlation?.value {
            // A part with more to come is held by the host until the last: the request is not
            // answered yet, and a cancel meanwhile still answers it (marked answered at the
            // first part, the cancel was ignored and the whole reply came later).
            let isPart = (try? result.get())?.headers.hasMore == true
            // The client was answered `CancelledError` already (SPEC §8: once).
            if isPart ? cancellations.wasCancelled(token, received: address.received) : !cancellations.answer(token, received: address.received) { return }
        }
        destination.deliver(result, to: address)
    }

    /// For work that ends by callback and within its own time limit (a NATS request): counted
    /// against the connection's requests in flight as `respond` is, without a task or a timer.
    /// `start` is handed `finish`, to call once with the outcome (later calls are ignored); a
    /// connection with too many running is answered `UnavailableError` and `start` not called.
    public func respondWhenDone(_ start: (_ finish: @escaping @Sendable (Result<Reply, ConduitError>) -> Void) -> Void) {
        let responder = self
        // A `finish` let go of uncalled would leave the client waiting for its timeout.
        guard let place = holdPlace(abandoned: { responder.fail(.internal("the handler let go of the request without answering it")) }) else { return }
        start { result in
            if place.release() { responder.send(result) }
        }
    }

    /// For work that answers with pushes, not a reply (a token stream), and keeps what the
    /// request carried while it runs: counted against the connection's requests in flight, and
    /// holding the request's bytes of the budget, as `respond` is, until `end` is called (once;
    /// later calls are ignored). A connection with too many running, or a full budget, is
    /// answered `UnavailableError` and `start` not called.
    public func holdWhileRunning(_ start: (_ end: @escaping @Sendable () -> Void) -> Void) {
        guard let place = holdPlace() else { return }
        start { _ = place.release() }
    }

    /// Takes the request's place among the connection's running ones and its bytes of the
    /// budget; nil when either is lacking, the request then answered so. `abandoned`: what is
    /// done when the place goes uncalled (its callback let go of without a call).
    private func holdPlace(abandoned: (@Sendable () -> Void)? = nil) -> HeldPlace? {
        if let refusal = inFlight?.acquire(bytes: requestBytes) {
            fail(refusal)
            return nil
        }
        return HeldPlace(inFlight: inFlight, bytes: requestBytes, abandoned: abandoned)
    }

    /// Replies with the outcome of `body`, run as a task: its value (nil: no reply) or its
    /// error. At `timeout` (else the host's request timeout) the reply is `TimeoutError`, on
    /// time, and the body is cancelled; stopping the route's handler, or the client cancelling
    /// the request (`cancel: <token>`), cancels it too. A connection with too many such
    /// requests running is answered `UnavailableError`. The request's place and bytes are held
    /// until the body ends, even when it goes on after its answer. Returns whether the body
    /// runs (false: refused so, and never called).
    @discardableResult
    public func respond(
        timeout: Duration? = nil,
        _ body: @escaping @Sendable () async throws -> Reply?
    ) -> Bool {
        guard let place = holdPlace() else { return false }
        let responder = self
        let deadline = timeout ?? defaultTimeout
        let registration = CancelRegistration(registry: cancellations, route: address.route, correlation: address.correlation, received: address.received)
        let work: @Sendable () async -> Void = {
            defer { registration.remove() }
            do {
                // Given back when the body ends, not with the answer: a body that outlives its
                // deadline or a cancel (a TLS connect waiting on its handshake) still holds the request.
                let reply = try await withDeadline(deadline) {
                    defer { _ = place.release() }
                    return try await body()
                }
                if let reply { responder.reply(reply) }
            } catch {
                responder.fail(ConduitError(converting: error))
            }
        }
        let task = tasks?.run(work) ?? Task { await work() }
        registration.onCancel { task.cancel() }
        return true
    }
}

/// A request's place among its connection's running ones and its bytes of the budget, given
/// back by the first of several calls, or when the last callback holding it goes: a handler
/// that let go of its `end` or `finish` without calling it held both for good.
private final class HeldPlace: Sendable {
    private let inFlight: InFlightLimit?
    private let bytes: Int
    private let released = Atomic<Bool>(false)
    private let abandoned: (@Sendable () -> Void)?

    init(inFlight: InFlightLimit?, bytes: Int, abandoned: (@Sendable () -> Void)?) {
        self.inFlight = inFlight
        self.bytes = bytes
        self.abandoned = abandoned
    }

    deinit {
        if release() { abandoned?() }
    }

    /// Gives the place back; true on the first call only.
    func release() -> Bool {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        inFlight?.release(bytes: bytes)
        return true
    }
}
