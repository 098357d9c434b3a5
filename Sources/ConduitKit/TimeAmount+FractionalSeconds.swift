public import NIOCore

extension TimeAmount {
    /// A setting's seconds (a `Double`: 0.5 s, 1e-3 s) as a NIO time amount.
    public static func fractionalSeconds(_ seconds: Double) -> TimeAmount {
        .nanoseconds(Int64(seconds * 1_000_000_000))
    }
}
