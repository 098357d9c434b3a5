import Synchronization

/// A handler's `start()` or `stop()` given at most `limit` (`limits.handlerStartStopSeconds`):
/// one that never returned held the control plane's queue, so the reload waiting on it, every
/// later control call and the shutdown never ended. Past the limit the caller goes on and the
/// step runs to its end in the background, where `late` gets its outcome.
enum TimeLimitedStep {
    /// The step's outcome, or nil when it took longer than `limit`.
    static func run(
        _ limit: Duration, _ step: @escaping @Sendable () async throws -> Void,
        late: @escaping @Sendable (Result<Void, any Error>) -> Void = { _ in }
    ) async -> Result<Void, any Error>? {
        let race = Race()
        return await withCheckedContinuation { continuation in
            race.begin(continuation)
            let timer = Task {
                try await Task.sleep(for: limit)
                race.settle(nil)
            }
            Task {
                let outcome: Result<Void, any Error>
                do {
                    try await step()
                    outcome = .success(())
                } catch {
                    outcome = .failure(error)
                }
                timer.cancel()
                if !race.settle(outcome) { late(outcome) }
            }
        }
    }

    /// The first of the step and the timer to end resumes the caller.
    private final class Race: Sendable {
        private let waiting = Mutex<CheckedContinuation<Result<Void, any Error>?, Never>?>(nil)

        func begin(_ continuation: CheckedContinuation<Result<Void, any Error>?, Never>) {
            waiting.withLock { $0 = continuation }
        }

        /// Resumes the caller with `outcome`; false when the other side already had.
        @discardableResult
        func settle(_ outcome: Result<Void, any Error>?) -> Bool {
            guard let continuation = waiting.withLock({ $0.take() }) else { return false }
            continuation.resume(returning: outcome)
            return true
        }
    }
}
