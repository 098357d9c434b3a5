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
/// running: a client can't pile up slow requests without limit. Each also holds its bytes of
/// the host's buffer budget while it runs, when the host gives one: a request keeps its
/// payload until it is answered.
public final class InFlightLimit: Sendable {
    public let limit: Int
    private let running = Atomic<Int>(0)
    private let budget: InFlightBudget?

    public convenience init(limit: Int) {
        self.init(limit: limit, budget: nil)
    }

    package init(limit: Int, budget: InFlightBudget?) {
        self.limit = limit
        self.budget = budget
    }

    /// Takes a place and `bytes` of the budget; what to answer when either is lacking.
    package func acquire(bytes: Int) -> ConduitError? {
        var current = running.load(ordering: .relaxed)
        while true {
            guard current < limit else { return exhausted }
            let (exchanged, original) = running.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        guard budget?.reserve(bytes) ?? true else {
            running.subtract(1, ordering: .relaxed)
            return .unavailable("the host's buffer budget is full; wait for this connection's running requests to be answered")
        }
        return nil
    }

    /// The answer to a request past the limit.
    private var exhausted: ConduitError {
        .unavailable("\(limit) requests of this connection are still running; wait for their replies")
    }

    package func release(bytes: Int) {
        budget?.release(bytes)
        running.subtract(1, ordering: .relaxed)
    }
}

/// Where requests in flight take their bytes from: the host's buffer budget.
package struct InFlightBudget: Sendable {
    let reserve: @Sendable (Int) -> Bool
    let release: @Sendable (Int) -> Void

    package init(reserve: @escaping @Sendable (Int) -> Bool, release: @escaping @Sendable (Int) -> Void) {
        self.reserve = reserve
        self.release = release
    }
}
