import ConduitKit
import NIOConcurrencyHelpers
import Synchronization

/// The host-wide byte budget that every buffer draws from (SPEC §3 "Backpressure and memory"):
/// chunk queues, outbound queues, push buffers. A buffer reserves a message's bytes before it
/// keeps the message and releases them when the message is written or dropped, so all of them
/// together never hold more than `limit` bytes of messages.
///
/// Also the one place that counts drops and refusals by cause, for diagnostics and metrics.
public final class BufferBudget: Sendable {
    public let limit: Int
    private let used = Atomic<Int>(0)
    private let drops = NIOLockedValueBox<[DropCause: Int]>([:])
    /// Messages the sockets' outbound queues dropped (drop-oldest), all sockets since the start.
    private let outboundDrops = Atomic<Int>(0)
    let metrics: HostMetrics

    init(limit: Int, metrics: HostMetrics) {
        self.limit = limit
        self.metrics = metrics
    }

    /// Takes `bytes` from the budget; false (nothing taken) when they don't fit. `share`: the
    /// part of the budget this use may fill (chunk queues get half, so a flood of incoming
    /// chunks can't starve the pushes going out).
    func reserve(_ bytes: Int, share: Share = .whole) -> Bool {
        let ceiling = share == .whole ? limit : limit / 2
        var current = used.load(ordering: .relaxed)
        while true {
            guard current + bytes <= ceiling else { return false }
            let (exchanged, original) = used.compareExchange(
                expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    enum Share { case whole, half }

    /// Requests running in a task hold their bytes in the incoming half, as chunk queues do:
    /// 1,024 of them per connection could keep 64 MB of payloads each.
    var forRequestsInFlight: InFlightBudget {
        InFlightBudget(reserve: { self.reserve($0, share: .half) }, release: { self.release($0) })
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        used.subtract(bytes, ordering: .relaxed)
    }

    /// Counts `count` messages dropped or refused for `cause`.
    func dropped(_ cause: DropCause, count: Int = 1) {
        guard count > 0 else { return }
        drops.withLockedValue { $0[cause, default: 0] += count }
        metrics.dropped(cause, count: count)
    }

    /// Counts `count` messages a socket's outbound queue dropped to make room (drop-oldest).
    func droppedFromOutboundQueue(count: Int) {
        outboundDrops.add(count, ordering: .relaxed)
        metrics.outboundDropped(count: count)
    }

    public var usedBytes: Int { used.load(ordering: .relaxed) }

    /// Records the bytes in use as a gauge (before `/metrics` is emitted).
    func publishUsage() { metrics.buffered(bytes: usedBytes) }

    /// What diagnostics show of the budget.
    public struct Snapshot: Sendable, Codable, Equatable {
        public let limitBytes: Int
        public let usedBytes: Int
        /// Messages dropped or refused, by cause (`queue-full`, `host-budget`, `expired`, `unencodable`).
        public let dropped: [String: Int]
        /// Messages the sockets' outbound queues dropped (drop-oldest), all sockets together:
        /// per id, diagnostics show only its current socket's.
        public let outboundDropped: Int
    }

    public var snapshot: Snapshot {
        Snapshot(
            limitBytes: limit, usedBytes: usedBytes,
            dropped: drops.withLockedValue { drops in
                Dictionary(uniqueKeysWithValues: DropCause.allCases.map { ($0.rawValue, drops[$0, default: 0]) })
            },
            outboundDropped: outboundDrops.load(ordering: .relaxed))
    }
}
