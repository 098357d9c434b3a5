public import NIOCore

extension TimeAmount {
    /// A setting's seconds (a `Double`: 0.5 s, 1e-3 s) as a NIO time amount. `seconds` must be
    /// finite and within about 292 years (nanoseconds in an `Int64`), or the conversion traps:
    /// every setting that comes here is range-checked when read (`maximum:`), with a clear error.
    public static func fractionalSeconds(_ seconds: Double) -> TimeAmount {
        .nanoseconds(Int64(seconds * 1_000_000_000))
    }
}
