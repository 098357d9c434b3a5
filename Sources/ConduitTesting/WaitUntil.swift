import Foundation

/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`: for state that
/// has no event to await (counters). Throws `TestClientError.timedOut`.
public func waitUntil(timeout: Duration = Patience.duration, _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestClientError.timedOut }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// `waitUntil`, blocking this thread: for a test that must stay on the thread it started on
/// (embedded event loops, which SwiftNIO allows on their own thread only).
public func waitUntilBlocking(timeout: Duration = Patience.duration, _ condition: () throws -> Bool) throws {
    let deadline = ContinuousClock.now + timeout
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw TestClientError.timedOut }
        Thread.sleep(forTimeInterval: 0.01)
    }
}
