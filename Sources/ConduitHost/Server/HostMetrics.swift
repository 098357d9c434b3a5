import ConduitKit
public import CoreMetrics

/// The host's metrics, created once (cached handles, so the hot path makes none). A class:
/// sessions and routes share one instance instead of copying ten references per message.
/// Exported by whatever swift-metrics backend the process bootstraps (Prometheus in
/// `conduit serve`), or by the factory a test passes in.
public final class HostMetrics: Sendable {
    let factory: any MetricsFactory
    private let connectionsOpened: Counter
    private let connectionsActive: Meter
    private let messagesIn: Counter
    private let messagesOut: Counter
    private let bytesIn: Counter
    private let bytesOut: Counter
    private let outboundDrops: Counter
    private let drops: [DropCause: Counter]
    private let bufferedBytes: Gauge
    /// Error counters by type, a fixed set: the host's own types, then `other`.
    private let errorCounters: [String: Counter]
    private let otherErrors: Counter
    private let resumeEvents: [ResumeEvent: Counter]
    private let handshakeRefusals: [HandshakeRefusal: Counter]
    private let ipcKeyRefusals: Counter
    private let clientPlaces: [ClientPlace: Counter]

    /// The handler latency's histogram (per route, request to reply).
    static let handlerDurationLabel = "conduit_handler_duration_seconds"

    /// Its buckets, to give the exporting backend: handlers here answer in microseconds, and
    /// Prometheus' defaults (5 ms up) put every one of them in the first bucket. Finer where
    /// this host's handlers answer, from 10 µs to 10 s, and few: swift-prometheus compares
    /// each latency with every bucket, about 42 instructions a bucket (its 11 defaults cost 450
    /// instructions a message, 5.5 % of the routed echo's; a `Double` histogram through a
    /// `Recorder` cost more, its generic conversion unspecialized).
    public static let durationHistogramBuckets: [String: [Duration]] = [
        handlerDurationLabel: [
            .microseconds(10), .microseconds(100), .microseconds(250), .milliseconds(1),
            .milliseconds(10), .milliseconds(100), .seconds(1), .seconds(10),
        ],
    ]

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        connectionsOpened = Counter(label: "conduit_connections_opened_total", dimensions: [], factory: factory)
        connectionsActive = Meter(label: "conduit_connections_active", dimensions: [], factory: factory)
        messagesIn = Counter(label: "conduit_messages_total", dimensions: [("direction", "in")], factory: factory)
        messagesOut = Counter(label: "conduit_messages_total", dimensions: [("direction", "out")], factory: factory)
        bytesIn = Counter(label: "conduit_bytes_total", dimensions: [("direction", "in")], factory: factory)
        bytesOut = Counter(label: "conduit_bytes_total", dimensions: [("direction", "out")], factory: factory)
        outboundDrops = Counter(label: "conduit_outbound_dropped_total", dimensions: [], factory: factory)
        errorCounters = Dictionary(uniqueKeysWithValues: ConduitError.Kind.builtIn.map {
            ($0.name, Counter(label: "conduit_errors_total", dimensions: [("type", $0.name)], factory: factory))
        })
        otherErrors = Counter(label: "conduit_errors_total", dimensions: [("type", "other")], factory: factory)
        bufferedBytes = Gauge(label: "conduit_buffered_bytes", dimensions: [], factory: factory)
        drops = Dictionary(uniqueKeysWithValues: DropCause.allCases.map {
            ($0, Counter(label: "conduit_dropped_total", dimensions: [("cause", $0.rawValue)], factory: factory))
        })
        resumeEvents = Dictionary(uniqueKeysWithValues: ResumeEvent.allCases.map {
            ($0, Counter(label: "conduit_resume_total", dimensions: [("event", $0.rawValue)], factory: factory))
        })
        handshakeRefusals = Dictionary(uniqueKeysWithValues: HandshakeRefusal.allCases.map {
            ($0, Counter(label: "conduit_handshakes_refused_total", dimensions: [("reason", $0.rawValue)], factory: factory))
        })
        ipcKeyRefusals = Counter(label: "conduit_ipc_requests_refused_total", dimensions: [("reason", "key")], factory: factory)
        clientPlaces = Dictionary(uniqueKeysWithValues: ClientPlace.allCases.map {
            ($0, Counter(label: "conduit_client_ids_total", dimensions: [("event", $0.rawValue)], factory: factory))
        })
    }

    func connectionOpened() {
        connectionsOpened.increment()
        connectionsActive.increment()
    }

    func connectionClosed() { connectionsActive.decrement() }

    func handshakeRefused(_ reason: HandshakeRefusal) { handshakeRefusals[reason]!.increment() }

    /// An IPC request without the right shared key (401 or 403).
    func ipcKeyRefused() { ipcKeyRefusals.increment() }

    /// A new id past `limits.maxClients` took an away id's place, or found none.
    func clientPlace(_ event: ClientPlace) { clientPlaces[event]!.increment() }

    /// Adds a connection's traffic since its last report: one report per read batch or
    /// flush, so the shared counters are not touched per message.
    func record(_ traffic: inout TrafficTally) {
        guard traffic.messagesIn | traffic.messagesOut != 0 else { return }
        if traffic.messagesIn > 0 {
            messagesIn.increment(by: traffic.messagesIn)
            bytesIn.increment(by: traffic.bytesIn)
        }
        if traffic.messagesOut > 0 {
            messagesOut.increment(by: traffic.messagesOut)
            bytesOut.increment(by: traffic.bytesOut)
        }
        traffic = TrafficTally()
    }

    func outboundDropped(count: Int) { outboundDrops.increment(by: count) }

    /// Messages dropped or refused (SPEC §3), by cause: a fixed set of labels.
    func dropped(_ cause: DropCause, count: Int) { drops[cause]!.increment(by: count) }

    /// The host-wide buffer budget in use, recorded when `/metrics` is read.
    func buffered(bytes: Int) { bufferedBytes.record(bytes) }

    /// What resume did (SPEC §9), summed over every id.
    func resume(_ event: ResumeEvent, count: Int = 1) {
        if count > 0 { resumeEvents[event]!.increment(by: count) }
    }

    func errorReplied(type: String) {
        (errorCounters[type] ?? otherErrors).increment()
    }
}
