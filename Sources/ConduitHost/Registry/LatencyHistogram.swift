import Atomics

/// Handler latencies of one route in 96 buckets, four per doubling from 1 µs to ~16 s, kept
/// for the diagnostics (the status page's p50/p99 charts). Counting is one relaxed atomic
/// add, with no allocation. Bucket `i` holds latencies up to
/// `upperBoundMicroseconds(i)`; the last one holds everything longer.
struct LatencyHistogram: Sendable {
    static let bucketCount = 96
    private let buckets: [ManagedAtomic<Int>] = (0..<bucketCount).map { _ in ManagedAtomic(0) }

    func record(nanoseconds: Int64) {
        buckets[Self.bucket(microseconds: max(0, Int(nanoseconds / 1000)))].wrappingIncrement(ordering: .relaxed)
    }

    /// Counts since start, per bucket.
    var counts: [Int] { buckets.map { $0.load(ordering: .relaxed) } }

    /// 4 × the power of two below `microseconds`, plus the next two bits: 0 for under 1 µs.
    static func bucket(microseconds: Int) -> Int {
        guard microseconds > 0 else { return 0 }
        let exponent = Int.bitWidth - 1 - microseconds.leadingZeroBitCount
        let fraction = exponent >= 2 ? (microseconds >> (exponent - 2)) & 3 : (microseconds << (2 - exponent)) & 3
        return min(bucketCount - 1, 4 * exponent + fraction)
    }

    /// The largest latency bucket `index` holds, in microseconds.
    static func upperBoundMicroseconds(_ index: Int) -> Double {
        let exponent = index / 4, fraction = index % 4
        return Double(5 + fraction) * Double(1 << exponent) / 4
    }
}
