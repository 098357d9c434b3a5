/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`: for state that
/// has no event to await (counters). Throws `TestClientError.timedOut`.
public func waitUntil(timeout: Duration = .seconds(10), _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestClientError.timedOut }
        try await Task.sleep(for: .milliseconds(10))
    }
}
