import ConduitNATS
import CoreMetrics
import NIOCore
import Synchronization

/// A NATS connection's counters in swift-metrics (so in `/metrics`), labelled by who owns
/// the connection (`route` or `cluster`). The client counts on its own; once a second the
/// increase since the last look is added here.
final class NATSMetricsExport: Sendable {
    private let client: NATSClient
    private let connected: Gauge
    private let counters: [(Counter, any KeyPath<NATSStatistics, Int> & Sendable)]
    private let last = Mutex(NATSStatistics())
    private let eventLoop: any EventLoop
    private let task: Mutex<RepeatedTask?> = Mutex(nil)

    init(client: NATSClient, owner: String, eventLoop: any EventLoop, factory: any MetricsFactory = MetricsSystem.factory) {
        self.client = client
        self.eventLoop = eventLoop
        self.connected = Gauge(label: "conduit_nats_connected", dimensions: [("owner", owner)], factory: factory)
        let labels: [(String, any KeyPath<NATSStatistics, Int> & Sendable)] = [
            ("conduit_nats_messages_in_total", \.messagesIn), ("conduit_nats_messages_out_total", \.messagesOut),
            ("conduit_nats_bytes_in_total", \.bytesIn), ("conduit_nats_bytes_out_total", \.bytesOut),
            ("conduit_nats_reconnects_total", \.reconnects), ("conduit_nats_requests_timed_out_total", \.requestsTimedOut),
            ("conduit_nats_no_responders_total", \.noResponders), ("conduit_nats_malformed_messages_total", \.malformedMessages),
        ]
        self.counters = labels.map { (Counter(label: $0.0, dimensions: [("owner", owner)], factory: factory), $0.1) }
    }

    /// Exports once a second from now on. Not in `init`: a handler made and never started (a
    /// reload that fails, `conduit check`) left a timer ticking for nothing.
    func start() {
        let made = eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in self?.export() }
        task.withLock { $0 = made }
    }

    func stop() {
        task.withLock { $0 }?.cancel()
        export()
    }

    private func export() {
        connected.record(client.connectionState == .connected ? 1 : 0)
        let now = client.statistics
        let before = last.withLock { last in
            defer { last = now }
            return last
        }
        for (counter, path) in counters where now[keyPath: path] > before[keyPath: path] {
            counter.increment(by: now[keyPath: path] - before[keyPath: path])
        }
    }
}
