import Synchronization

/// The tasks a route's requests are answered from (`Responder.respond`), so that stopping the
/// route's handler (shutdown, or a reload that removes it) cancels what is still running.
public final class RequestTasks: Sendable {
    private let running = Mutex<(next: Int, tasks: [Int: Task<Void, Never>], stopped: Bool)>((0, [:], false))

    public init() {}

    /// Runs `body` as a tracked task; at once cancelled if the route has stopped.
    @discardableResult
    func run(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        running.withLock { running in
            let id = running.next
            running.next += 1
            let task = Task {
                await body()
                self.forget(id)
            }
            if running.stopped { task.cancel() } else { running.tasks[id] = task }
            return task
        }
    }

    /// Cancels every task still running, and every one started from now on.
    public func cancelAll() {
        let tasks = running.withLock { running in
            running.stopped = true
            defer { running.tasks = [:] }
            return Array(running.tasks.values)
        }
        for task in tasks { task.cancel() }
    }

    public var count: Int { running.withLock { $0.tasks.count } }

    private func forget(_ id: Int) {
        _ = running.withLock { $0.tasks.removeValue(forKey: id) }
    }
}

/// A bound on one connection's requests answered from a task (`Responder.respond`) and still
/// running: a client can't pile up slow requests without limit.
public final class InFlightLimit: Sendable {
    public let limit: Int
    private let running = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// Takes a place; false when all are taken.
    package func acquire() -> Bool {
        var current = running.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = running.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// The answer to a request past the limit.
    package var exhausted: ConduitError {
        .unavailable("\(limit) requests of this connection are still running; wait for their replies")
    }

    package func release() { running.subtract(1, ordering: .relaxed) }
}
