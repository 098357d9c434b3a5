public import ConduitKit

/// Where an answer's tokens come from.
protocol TokenBackend: Sendable {
    /// Called from the handler's `start` (so a route table that is only validated opens nothing).
    func start()
    /// Called from the handler's `stop`, after every stream has ended.
    func shutdown() async

    /// Calls `emit` with each token of the answer to `prompt`, in order, at most `maxTokens`
    /// times, and returns once the answer is complete. `emit` suspends now and then until the
    /// host has caught up (backpressure). Throws `CancellationError` when the task is
    /// cancelled (an abort) and a `ConduitError` saying what went wrong otherwise.
    func generate(prompt: String, maxTokens: Int, emit: (String) async -> Void) async throws
}

extension TokenBackend {
    func start() {}
    func shutdown() async {}
}

extension ConduitError.Kind {
    /// The upstream model server answered, but not with a usable stream (non-200, a
    /// malformed event, an error event, a stream cut short).
    public static let upstream = ConduitError.Kind("UpstreamError")
}

extension ConduitError {
    static func upstream(_ message: String) -> Self { Self(.upstream, message) }
}
