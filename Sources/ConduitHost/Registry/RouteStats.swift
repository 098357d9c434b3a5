import ConduitKit
import CoreMetrics
import NIOCore
import Synchronization

/// Per-route counters: atomics for diagnostics (no lock on the hot path) and metric handles
/// made once per route (messages and bytes per direction, handler latency), so counting a
/// message allocates nothing.
public final class RouteStats: ReplyCounter {
    let requests = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let bytesIn = Atomic<Int>(0)
    let bytesOut = Atomic<Int>(0)
    private let metrics: HostMetrics
    private let messagesIn: Counter
    private let messagesOut: Counter
    private let bytesInCounter: Counter
    private let bytesOutCounter: Counter
    private let latency: Timer
    private let latencies = LatencyHistogram()
    /// What the route's handlers make their metrics with.
    let handlerMetrics: RouteMetricsFactory

    init(route: String, metrics: HostMetrics, handlerMetrics: RouteMetricsFactory) {
        self.metrics = metrics
        self.handlerMetrics = handlerMetrics
        let factory = metrics.factory
        messagesIn = Counter(label: "conduit_route_messages_total", dimensions: [("route", route), ("direction", "in")], factory: factory)
        messagesOut = Counter(label: "conduit_route_messages_total", dimensions: [("route", route), ("direction", "out")], factory: factory)
        bytesInCounter = Counter(label: "conduit_route_bytes_total", dimensions: [("route", route), ("direction", "in")], factory: factory)
        bytesOutCounter = Counter(label: "conduit_route_bytes_total", dimensions: [("route", route), ("direction", "out")], factory: factory)
        latency = Timer(label: HostMetrics.handlerDurationLabel, dimensions: [("route", route)], preferredDisplayUnit: .seconds, factory: factory)
    }

    func countRequest(bytes: Int) {
        requests.add(1, ordering: .relaxed)
        bytesIn.add(bytes, ordering: .relaxed)
        messagesIn.increment()
        bytesInCounter.increment(by: bytes)
    }

    /// Counts a reply; `since` is when the request reached the handler (the latency's start).
    package func countReply(bytes: Int, errorType: String?, since start: NIODeadline) {
        bytesOut.add(bytes, ordering: .relaxed)
        messagesOut.increment()
        bytesOutCounter.increment(by: bytes)
        let nanoseconds = (NIODeadline.now() - start).nanoseconds
        latency.recordNanoseconds(nanoseconds)
        latencies.record(nanoseconds: nanoseconds)
        if let errorType {
            errors.add(1, ordering: .relaxed)
            metrics.errorReplied(type: errorType)
        }
    }

    /// The route left the table: its series leave the metrics' exposition.
    func destroy() {
        for counter in [messagesIn, messagesOut, bytesInCounter, bytesOutCounter] { counter.destroy() }
        latency.destroy()
        handlerMetrics.destroyAll()
    }

    public struct Snapshot: Sendable, Codable, Equatable {
        public let requests: Int
        public let errors: Int
        public let bytesIn: Int
        public let bytesOut: Int
        /// Replies per latency bucket since start: bucket `i` (0…95) holds handler latencies
        /// up to (5 + i % 4) × 2^(i / 4) / 4 µs, four buckets per doubling; the last, the rest.
        public let latencyBuckets: [Int]
    }

    public var snapshot: Snapshot {
        Snapshot(
            requests: requests.load(ordering: .relaxed), errors: errors.load(ordering: .relaxed),
            bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: bytesOut.load(ordering: .relaxed),
            latencyBuckets: latencies.counts
        )
    }
}
