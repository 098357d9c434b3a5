@testable import ConduitHost
import Testing

/// The route latency buckets behind the status page's p50/p99: every latency falls in a
/// bucket whose bounds hold it, within a quarter of a doubling.
struct LatencyHistogramTests {
    @Test(arguments: [1, 2, 3, 5, 7, 10, 48, 100, 999, 1_000, 65_535, 1_000_000, 16_000_000])
    func aLatencyIsWithinItsBucket(microseconds: Int) {
        let index = LatencyHistogram.bucket(microseconds: microseconds)
        let upper = LatencyHistogram.upperBoundMicroseconds(index)
        let lower = index == 0 ? 0 : LatencyHistogram.upperBoundMicroseconds(index - 1)
        #expect(Double(microseconds) >= lower && Double(microseconds) < upper, "\(microseconds) µs in bucket \(index) [\(lower), \(upper))")
        #expect(upper <= Double(max(microseconds, 1)) * 2.5)
    }

    @Test func countsGoToTheirBucketsAndTheLongestToTheLast() {
        let histogram = LatencyHistogram()
        histogram.record(nanoseconds: 50_000)
        histogram.record(nanoseconds: 50_000)
        histogram.record(nanoseconds: 600_000_000_000)
        let counts = histogram.counts
        #expect(counts[LatencyHistogram.bucket(microseconds: 50)] == 2)
        #expect(counts[LatencyHistogram.bucketCount - 1] == 1)
        #expect(counts.reduce(0, +) == 3)
    }
}
