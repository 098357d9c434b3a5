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
        var handlers: [@Sendable () -> Void] = []
        var cancelled = false
        /// Its reply went out: a cancel is too late, as after its end.
        var answered = false
        /// The requests holding it (`Request.received`), one per registration not yet removed:
        /// the entry goes when the last one is.
        var holders: [NIODeadline] = []
    }

    /// What a cancel found: the request to answer `CancelledError`.
    package struct Cancelled: Sendable {
        package let route: String
        /// The correlation header's name (`token` or `seq`).
        package let correlation: String
    }

    /// A bound on what one connection may have registered; past it a request is simply not
    /// cancellable (its work runs to the end), so a handler that never finishes its requests
    /// can't grow this without limit.
    package static let maxEntries = 4096
    private let entries = Mutex<[ExactText: Entry]>([:])
    /// Whether anything is registered: replies check for cancellation only then.
    private let tracked = Atomic<Int>(0)

    package init() {}

    /// Cancels `token`: runs what was registered for it and returns the request to answer
    /// `CancelledError`; nil (ignored) for a token unknown, finished, answered or already cancelled.
    package func cancel(_ token: String) -> Cancelled? {
        let key = ExactText(token)
        let found = entries.withLock { entries -> (Cancelled, [@Sendable () -> Void])? in
            guard var entry = entries[key], !entry.cancelled, !entry.answered else { return nil }
            entry.cancelled = true
            let handlers = entry.handlers
            entry.handlers = []
            entries[key] = entry
            return (Cancelled(route: entry.route, correlation: entry.correlation), handlers)
        }
        guard let (cancelled, handlers) = found else { return nil }
        for handler in handlers { handler() }
        return cancelled
    }

    /// Nothing is registered.
    package var isEmpty: Bool { tracked.load(ordering: .relaxed) == 0 }

    /// Whether any request is registered: none nearly always, and then nothing else is asked.
    package var tracksAny: Bool { tracked.load(ordering: .relaxed) > 0 }

    /// Whether the request `token` was cancelled: its replies are no longer sent.
    package func isCancelled(_ token: String) -> Bool {
        guard tracked.load(ordering: .relaxed) > 0 else { return false }
        return entries.withLock { $0[ExactText(token)]?.cancelled ?? false }
    }

    /// The request `token` received at `received` is about to be answered: false when it was
    /// cancelled (its client has its `CancelledError`, SPEC §8: once); else, when that request
    /// is the one registered, a cancel from now on is ignored. Checked and marked in one step:
    /// a cancel read between a check and the reply answered it twice. Another request's reply
    /// under the same token (an echo) marks nothing: it made the registered one uncancellable.
    package func answer(_ token: String, received: NIODeadline) -> Bool {
        guard tracked.load(ordering: .relaxed) > 0 else { return true }
        let key = ExactText(token)
        return entries.withLock { entries in
            guard entries[key] != nil else { return true }
            guard !entries[key]!.cancelled else { return false }
            if entries[key]!.holders.contains(received) { entries[key]!.answered = true }
            return true
        }
    }

    fileprivate func hold(_ token: String, route: String, correlation: String, received: NIODeadline) -> Bool {
        let key = ExactText(token)
        let held = entries.withLock { entries -> Bool in
            if entries[key] == nil {
                guard entries.count < Self.maxEntries else { return false }
                entries[key] = Entry(route: route, correlation: correlation)
            }
            entries[key]!.holders.append(received)
            return true
        }
        if held { tracked.add(1, ordering: .relaxed) }
        return held
    }

    fileprivate func add(_ token: String, _ handler: @escaping @Sendable () -> Void) {
        let key = ExactText(token)
        let runNow = entries.withLock { entries -> Bool in
            guard entries[key] != nil else { return false }
            if entries[key]!.cancelled { return true }
            entries[key]!.handlers.append(handler)
            return false
        }
        if runNow { handler() }
    }

    fileprivate func release(_ token: String, received: NIODeadline) {
        let key = ExactText(token)
        entries.withLock { entries in
            guard var entry = entries[key] else { return }
            if let held = entry.holders.firstIndex(of: received) { entry.holders.remove(at: held) }
            entries[key] = entry.holders.isEmpty ? nil : entry
        }
        tracked.subtract(1, ordering: .relaxed)
    }
}

/// A request's hold on its connection's `CancellationRegistry`: while held, a cancel of its
/// token runs the handlers added to it. `remove()` it when the work ends; a request that can't
/// be cancelled (no token, or the registry is full) gets an inert one.
public final class CancelRegistration: Sendable {
    private let registry: CancellationRegistry?
    private let token: String
    private let received: NIODeadline
    private let removed = Atomic<Bool>(false)

    /// `correlation`: the request's `token` (or `seq`) header; without one it can't be cancelled.
    /// `received`: the request's, which its replies carry (`Request.received`).
    init(registry: CancellationRegistry?, route: String, correlation: (name: String, value: String)?, received: NIODeadline) {
        let held = correlation.map { registry?.hold($0.value, route: route, correlation: $0.name, received: received) ?? false } ?? false
        self.registry = held ? registry : nil
        self.token = correlation?.value ?? ""
        self.received = received
    }

    /// Runs `handler` (on the canceller's thread, at most once) when the request is cancelled;
    /// at once if it already was.
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        guard !removed.load(ordering: .relaxed) else { return }
        registry?.add(token, handler)
    }

    /// The work is over: a later cancel of the token is ignored.
    public func remove() {
        guard let registry, !removed.exchange(true, ordering: .relaxed) else { return }
        registry.release(token, received: received)
    }
}
