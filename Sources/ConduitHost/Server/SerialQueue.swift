/// Runs async operations one at a time, in the order they were asked for: an async mutex. The
/// control plane's start, stop, key rotation and reload go through one, so concurrent calls
/// never interleave (SPEC §8): an actor alone would not do, since it lets a second call in
/// while the first awaits a bind.
actor SerialQueue {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func run<Result: Sendable>(_ body: @Sendable () async throws -> Result) async throws -> Result {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}
