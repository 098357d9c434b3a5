/// How `reconnect` spaces its attempts: exponential backoff with jitter (SPEC §7). Attempt n
/// waits a random time between half and all of `min(maxDelay, initialDelay × 2ⁿ)`, so many
/// clients that lost the same host don't come back in lockstep.
public struct Backoff: Sendable, Hashable {
    /// Attempts after the first one.
    public var retries: Int
    public var initialDelay: Duration
    public var maxDelay: Duration
    /// How long one attempt (the TCP connect and the WebSocket upgrade) may take before it
    /// counts as failed: a server that takes the connection and never answers (a stale port
    /// that something else now listens on) must not stop the client from trying again.
    public var attemptTimeout: Duration

    public init(
        retries: Int = 32, initialDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30),
        attemptTimeout: Duration = .seconds(10)
    ) {
        self.retries = retries
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.attemptTimeout = attemptTimeout
    }

    /// The wait before retry `attempt` (0 for the first retry).
    public func delay(before attempt: Int) -> Duration {
        let doubled = initialDelay * (1 << min(attempt, 30))
        let ceiling = min(doubled, maxDelay)
        return ceiling * Double.random(in: 0.5...1.0)
    }
}
