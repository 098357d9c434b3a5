import Synchronization

/// Per-route counters for diagnostics; atomics, so counting costs no lock on the hot path.
public final class RouteStats: Sendable {
    let requests = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let bytesIn = Atomic<Int>(0)
    let bytesOut = Atomic<Int>(0)

    init() {}

    func countRequest(bytes: Int) {
        requests.add(1, ordering: .relaxed)
        bytesIn.add(bytes, ordering: .relaxed)
    }

    func countReply(bytes: Int, isError: Bool) {
        bytesOut.add(bytes, ordering: .relaxed)
        if isError { errors.add(1, ordering: .relaxed) }
    }

    public struct Snapshot: Sendable, Codable, Equatable {
        public let requests: Int
        public let errors: Int
        public let bytesIn: Int
        public let bytesOut: Int
    }

    public var snapshot: Snapshot {
        Snapshot(
            requests: requests.load(ordering: .relaxed), errors: errors.load(ordering: .relaxed),
            bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: bytesOut.load(ordering: .relaxed)
        )
    }
}
