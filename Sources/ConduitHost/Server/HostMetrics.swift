import CoreMetrics

/// The host's metrics, created once (cached handles, so the hot path makes none).
/// Exported by whatever swift-metrics backend the process bootstraps (Prometheus in `conduit serve`).
struct HostMetrics: Sendable {
    private let connectionsOpened = Counter(label: "conduit_connections_opened_total")
    private let connectionsActive = Meter(label: "conduit_connections_active")
    private let messagesIn = Counter(label: "conduit_messages_total", dimensions: [("direction", "in")])
    private let messagesOut = Counter(label: "conduit_messages_total", dimensions: [("direction", "out")])
    private let bytesIn = Counter(label: "conduit_bytes_total", dimensions: [("direction", "in")])
    private let bytesOut = Counter(label: "conduit_bytes_total", dimensions: [("direction", "out")])
    private let outboundDrops = Counter(label: "conduit_outbound_dropped_total")

    func connectionOpened() {
        connectionsOpened.increment()
        connectionsActive.increment()
    }

    func connectionClosed() { connectionsActive.decrement() }

    func messageReceived(bytes: Int) {
        messagesIn.increment()
        bytesIn.increment(by: bytes)
    }

    func messageSent(bytes: Int) {
        messagesOut.increment()
        bytesOut.increment(by: bytes)
    }

    func outboundDropped() { outboundDrops.increment() }
}
