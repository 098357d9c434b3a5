import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

/// Requests waiting for their reply, by token. A reply resolves the request whose token it
/// carries; a timeout, a cancelled caller or `close()` fails it. Requests outlive a reconnect:
/// the host keeps a reply to a client without a socket and delivers it when the id is back.
final class PendingRequests: Sendable {
    /// A registered request: the outcome may come before its caller waits for it.
    private struct Slot {
        var waiter: CheckedContinuation<Message, any Error>?
        var outcome: Result<Message, any Error>?
        var timer: Scheduled<Void>?
    }

    private struct State {
        var slots: [String: Slot] = [:]
        var nextToken = 0
        /// Tokens of requests that ended before the host's last answer to them (cancelled,
        /// timed out, refused as too large): every later answer with one (`CancelledError`, a
        /// reply that crossed the cancel, the reply to a cut-off payload) is swallowed, not
        /// handed to the app. The newest `maxIgnored` are kept; an older token's answer is
        /// delivered as any unmatched message.
        var ignored = NewestMembers<String>(limit: PendingRequests.maxIgnored)
    }

    /// Four times the requests a host runs for a connection at once (1,024 by default): with
    /// resume, requests that timed out while the socket was down are sent again after the
    /// reconnect, with their cancels, and answered then (256 let most of a thousand through).
    static let maxIgnored = 4_096

    private let state = NIOLockedValueBox(State())
    private let prefix: String

    /// `prefix` keeps generated tokens apart from the ones a caller puts on `send`; the random
    /// part keeps them apart from another instance's on the same id. Counted from 1 in every
    /// instance, a reply the host carried from a closed instance to the next (unacknowledged,
    /// SPEC §9) had the token of the new instance's first request and answered it.
    init(prefix: String = "r.") {
        self.prefix = prefix + String(UInt32.random(in: .min ... .max), radix: 36) + "."
    }

    /// A new token, registered before the request goes out so a fast reply can't be missed;
    /// it fails with `timedOut` unless resolved within `timeout`.
    func register(timeout: Duration, timers: any EventLoop) -> String {
        let token = state.withLockedValue { state in
            state.nextToken += 1
            let token = prefix + String(state.nextToken)
            state.slots[token] = Slot()
            return token
        }
        let timer = timers.scheduleTask(in: TimeAmount(timeout)) {
            _ = self.settle(token, .failure(ConduitClientError(.timedOut, "no reply to token \(token) within \(timeout)")), ignoringLaterAnswers: true)
        }
        state.withLockedValue { $0.slots[token]?.timer = timer }
        return token
    }

    /// The reply to `token` (registered with `register`), or its failure.
    func wait(for token: String) async throws -> Message {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome = state.withLockedValue { state -> Result<Message, any Error>? in
                    guard let slot = state.slots[token] else {
                        return .failure(ConduitClientError(.closed, "the request \(token) is no longer pending"))
                    }
                    guard let outcome = slot.outcome else {
                        state.slots[token]?.waiter = continuation
                        return nil
                    }
                    state.slots[token] = nil
                    return outcome
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            settle(token, .failure(CancellationError()), ignoringLaterAnswers: true)
        }
    }

    /// Hands `message` to the request waiting for its token; false when there is none. True
    /// too for a later answer to a request that already ended: swallowed.
    func resolve(_ message: Message) -> Bool {
        // A relay (the host's `from`, no `route`: every reply has one) is another client's
        // message, whatever token it carries: tokens are predictable, and one was taken for
        // the reply to the request it named.
        guard let token = message.headers.correlation?.value, message.headers[HeaderName.from] == nil || message.headers.route != nil
        else { return false }
        // A waiting request takes it; only a message nobody waits for is checked against the
        // ignored tokens, so a reply costs one lock.
        if settle(token, .success(message)) {
            // The host's chunk queue refused a part of the request: the parts after it, already
            // sent, make a request of their own with this token, and its answers (the reply to
            // a cut-off payload) are not the app's. Marked here, before the next message is
            // delivered, not when the caller wakes up.
            if message.headers[HeaderName.error] == Self.payloadTooLarge { state.withLockedValue { _ = $0.ignored.insert(token) } }
            return true
        }
        // Kept after a match: one request may be answered more than once (a reply that crossed
        // the cancel, then `CancelledError`; a cut-off payload's further refusals and reply).
        return state.withLockedValue { $0.ignored.contains(token) }
    }

    private static let payloadTooLarge = "PayloadTooLargeError"

    func fail(_ token: String, _ error: any Error) {
        settle(token, .failure(error))
    }

    func failAll(_ error: any Error) {
        let tokens = state.withLockedValue { Array($0.slots.keys) }
        for token in tokens { settle(token, .failure(error)) }
    }

    /// Ends the request `token` with `outcome`: resumes its waiter, or keeps the outcome for
    /// `wait`. Only the first outcome counts. `ignoringLaterAnswers` (a timeout, a cancelled
    /// caller): the host's answers from now on are swallowed, marked under the same lock, so
    /// one read in between is not handed to the app as a message nobody waits for.
    @discardableResult
    func settle(_ token: String, _ outcome: Result<Message, any Error>, ignoringLaterAnswers: Bool = false) -> Bool {
        let settled = state.withLockedValue { state -> (Slot, resume: Bool)? in
            guard var slot = state.slots[token], slot.outcome == nil else { return nil }
            if ignoringLaterAnswers { state.ignored.insert(token) }
            guard slot.waiter != nil else {
                slot.outcome = outcome
                state.slots[token] = slot
                return (slot, false)
            }
            state.slots[token] = nil
            return (slot, true)
        }
        guard let (slot, resume) = settled else { return false }
        slot.timer?.cancel()
        if resume { slot.waiter?.resume(with: outcome) }
        return true
    }
}
