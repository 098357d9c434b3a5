import ConduitWire
import NIOCore
import Synchronization

/// The requests of one connection that a client can cancel (SPEC §8: a message without
/// `route` carrying `cancel: <token>`), by token. Only requests that can be stopped are here:
/// one answered from a task (`Responder.respond`), or one whose handler registered
/// `Request.onCancel`. A request answered at once never enters it, so it costs nothing.
package final class CancellationRegistry: Sendable {
    private struct Entry {
        let route: String
        let correlation: String
        var cancelled = false
        /// Its reply went out: a cancel is too late, as after its end.
        var answered = false
        /// One per registration not yet removed: the entry goes when the last one does.
        var holders: [Holder] = []
    }

    /// A registration: its request (`Request.received`, which its replies carry) and what it
    /// asked to run on a cancel, which goes with it. Kept in the entry, a refused request's
    /// handler (a second stream under a running one's token) stayed until the entry's end,
    /// with what it captured: 1,500 of them held 89 MB.
    private struct Holder {
        let number: UInt64
        let received: NIODeadline
        var handlers: [@Sendable () -> Void] = []
    }

    /// A request cancelled whose registrations are all gone: its replies are still not sent
    /// (SPEC §8: answered once). A handler that removed its registration on the cancel and
    /// replied after it answered twice, `CancelledError` then its reply.
    private struct CancelledRequest: Hashable, Sendable {
        let token: ExactText
        let received: NIODeadline
    }

    private struct State {
        var entries: [ExactText: Entry] = [:]
        var holders = 0
        var nextHolder: UInt64 = 0
        /// The newest `maxRegistrations`.
        var cancelledAndGone = NewestMembers<CancelledRequest>(limit: CancellationRegistry.maxRegistrations)
    }

    /// What a cancel found: the request to answer `CancelledError`.
    package struct Cancelled: Sendable {
        package let route: String
        /// The correlation header's name (`token` or `seq`).
        package let correlation: String
    }

    /// A bound on the registrations one connection may hold; past it a request is simply not
    /// cancellable (its work runs to the end), so a handler that never finishes its requests
    /// can't grow this without limit, under many tokens or under one.
    package static let maxRegistrations = 4096
    private let state = Mutex(State())
    /// Registrations held, and cancelled requests remembered: replies check only when any.
    private let tracked = Atomic<Int>(0)
    /// Registrations held.
    private let live = Atomic<Int>(0)

    /// How a request of this connection cancelled from another (an IPC request, from a socket of
    /// the id it names) is answered: by its own connection, to its own caller. Nil: the
    /// connection the cancel came on answers (a socket's earlier socket is gone).
    package let answersCancels: (@Sendable (Cancelled, _ token: String) -> Void)?

    package init(answersCancels: (@Sendable (Cancelled, _ token: String) -> Void)? = nil) {
        self.answersCancels = answersCancels
    }

    /// Cancels `token`: runs what was registered for it and returns the request to answer
    /// `CancelledError`; nil (ignored) for a token unknown, finished, answered or already cancelled.
    package func cancel(_ token: String) -> Cancelled? {
        let key = ExactText(token)
        let found = state.withLock { state -> (Cancelled, [@Sendable () -> Void])? in
            guard var entry = state.entries[key], !entry.cancelled, !entry.answered else { return nil }
            entry.cancelled = true
            let handlers = entry.holders.flatMap(\.handlers)
            for index in entry.holders.indices { entry.holders[index].handlers = [] }
            state.entries[key] = entry
            return (Cancelled(route: entry.route, correlation: entry.correlation), handlers)
        }
        guard let (cancelled, handlers) = found else { return nil }
        for handler in handlers { handler() }
        return cancelled
    }

    /// Nothing is registered: nothing left to cancel.
    package var isEmpty: Bool { live.load(ordering: .relaxed) == 0 }

    /// Whether any request is registered or remembered as cancelled: none nearly always, and
    /// then nothing else is asked.
    package var tracksAny: Bool { tracked.load(ordering: .relaxed) > 0 }

    /// Whether a request under `token` is cancelled and still registered: the token is not to
    /// be used again yet.
    package func isCancelled(_ token: String) -> Bool {
        guard tracked.load(ordering: .relaxed) > 0 else { return false }
        return state.withLock { $0.entries[ExactText(token)]?.cancelled ?? false }
    }

    /// Whether the request `token` received at `received` was cancelled, registered or not any
    /// more: its replies are not sent.
    package func wasCancelled(_ token: String, received: NIODeadline) -> Bool {
        guard tracked.load(ordering: .relaxed) > 0 else { return false }
        let key = ExactText(token)
        return state.withLock { state in
            state.entries[key]?.cancelled ?? state.cancelledAndGone.contains(CancelledRequest(token: key, received: received))
        }
    }

    /// The request `token` received at `received` is about to be answered: false when it was
    /// cancelled (its client has its `CancelledError`, SPEC §8: once); else, when that request
    /// is the one registered, a cancel from now on is ignored. Checked and marked in one step:
    /// a cancel read between a check and the reply answered it twice. Another request's reply
    /// under the same token (an echo) marks nothing: it made the registered one uncancellable.
    ///
    /// The request's registrations end with its answer (a cancel is too late from now on): a
    /// handler that let go of its registration without removing it (`onCancel`'s result
    /// discarded) held it, and its handler, for good; past `maxRegistrations` of them no
    /// request of the connection could be cancelled.
    package func answer(_ token: String, received: NIODeadline) -> Bool {
        guard tracked.load(ordering: .relaxed) > 0 else { return true }
        let key = ExactText(token)
        let (answered, released) = state.withLock { state -> (Bool, Int) in
            guard var entry = state.entries[key] else {
                return (!state.cancelledAndGone.contains(CancelledRequest(token: key, received: received)), 0)
            }
            guard !entry.cancelled else { return (false, 0) }
            let before = entry.holders.count
            entry.holders.removeAll { $0.received == received }
            let released = before - entry.holders.count
            guard released > 0 else { return (true, 0) }
            state.holders -= released
            entry.answered = true
            state.entries[key] = entry.holders.isEmpty ? nil : entry
            return (true, released)
        }
        if released > 0 {
            tracked.subtract(released, ordering: .relaxed)
            live.subtract(released, ordering: .relaxed)
        }
        return answered
    }

    /// A new registration of `token`: its number, nil when the connection holds its most.
    fileprivate func hold(_ token: String, route: String, correlation: String, received: NIODeadline) -> UInt64? {
        let key = ExactText(token)
        let number = state.withLock { state -> UInt64? in
            guard state.holders < Self.maxRegistrations else { return nil }
            state.nextHolder += 1
            state.holders += 1
            state.entries[key, default: Entry(route: route, correlation: correlation)].holders.append(Holder(number: state.nextHolder, received: received))
            return state.nextHolder
        }
        if number != nil {
            tracked.add(1, ordering: .relaxed)
            live.add(1, ordering: .relaxed)
        }
        return number
    }

    fileprivate func add(_ token: String, holder: UInt64, _ handler: @escaping @Sendable () -> Void) {
        let key = ExactText(token)
        let runNow = state.withLock { state -> Bool in
            guard let entry = state.entries[key], let index = entry.holders.firstIndex(where: { $0.number == holder }) else { return false }
            if entry.cancelled { return true }
            state.entries[key]!.holders[index].handlers.append(handler)
            return false
        }
        if runNow { handler() }
    }

    /// Removes the registration `holder` (gone already once its request was answered);
    /// whether its request was cancelled first, which is then remembered.
    fileprivate func release(_ token: String, holder: UInt64) -> Bool {
        let key = ExactText(token)
        let (found, cancelled, remembered) = state.withLock { state -> (Bool, Bool, Int) in
            guard var entry = state.entries[key], let index = entry.holders.firstIndex(where: { $0.number == holder }) else { return (false, false, 0) }
            let removed = entry.holders.remove(at: index)
            state.holders -= 1
            state.entries[key] = entry.holders.isEmpty ? nil : entry
            guard entry.cancelled, entry.holders.isEmpty else { return (true, entry.cancelled, 0) }
            let (inserted, forgotten) = state.cancelledAndGone.insert(CancelledRequest(token: key, received: removed.received))
            return (true, true, (inserted ? 1 : 0) - (forgotten == nil ? 0 : 1))
        }
        guard found else { return false }
        tracked.add(remembered - 1, ordering: .relaxed)
        live.subtract(1, ordering: .relaxed)
        return cancelled
    }
}

/// A request's hold on its connection's `CancellationRegistry`: while held, a cancel of its
/// token runs the handlers added to it. `remove()` it when the work ends; a request that can't
/// be cancelled (no token, or the registry is full) gets an inert one.
public final class CancelRegistration: Sendable {
    private let registry: CancellationRegistry?
    private let token: String
    private let holder: UInt64
    private let removed = Atomic<Bool>(false)

    /// `correlation`: the request's `token` (or `seq`) header; without one it can't be cancelled.
    /// `received`: the request's, which its replies carry (`Request.received`).
    init(registry: CancellationRegistry?, route: String, correlation: (name: String, value: String)?, received: NIODeadline) {
        let holder = correlation.flatMap { registry?.hold($0.value, route: route, correlation: $0.name, received: received) }
        self.registry = holder == nil ? nil : registry
        self.token = correlation?.value ?? ""
        self.holder = holder ?? 0
    }

    /// Runs `handler` (on the canceller's thread, at most once) when the request is cancelled;
    /// at once if it already was.
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        guard !removed.load(ordering: .relaxed) else { return }
        registry?.add(token, holder: holder, handler)
    }

    /// The work is over: a later cancel of the token is ignored, and what it registered goes.
    /// Returns whether the request was cancelled before (its client has its `CancelledError`):
    /// work that ends with a message of its own can say so in it, and one cancelled after
    /// this is not answered `CancelledError` beside it.
    @discardableResult
    public func remove() -> Bool {
        guard let registry, !removed.exchange(true, ordering: .relaxed) else { return false }
        return registry.release(token, holder: holder)
    }
}
