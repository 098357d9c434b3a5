import ConduitKit
import ConduitWire
import CoreMetrics
import Synchronization

/// The drops of every socket of one handler, closed ones included, in its diagnostics and in
/// `/metrics` (SPEC §3: every datagram drop is counted per socket and in diagnostics). The
/// drops to a full queue are the host's (`buffers.dropped`); these are the two it can't see:
/// datagrams longer than `maxDatagramBytes`, and those the kernel dropped with the socket's
/// receive buffer full, which no read ever returns.
final class UDPTotals: Sendable {
    private let tooLarge = Atomic<Int>(0)
    /// Kernel drops of the sockets closed since the handler started.
    private let droppedByKernelOfClosed = Atomic<Int>(0)
    private let tooLargeCounter: Counter
    private let kernelCounter: Counter

    init(route: String, metrics: any MetricsFactory) {
        tooLargeCounter = Counter(label: "conduit_udp_datagrams_dropped_total", dimensions: [("route", route), ("cause", "too-large")], factory: metrics)
        kernelCounter = Counter(label: "conduit_udp_datagrams_dropped_total", dimensions: [("route", route), ("cause", "kernel")], factory: metrics)
    }

    func droppedTooLarge() {
        tooLarge.add(1, ordering: .relaxed)
        tooLargeCounter.increment()
    }

    func droppedByKernel(_ more: Int) {
        kernelCounter.increment(by: more)
    }

    func socketClosed(droppedByKernel: Int) {
        droppedByKernelOfClosed.add(droppedByKernel, ordering: .relaxed)
    }

    func diagnostics(open: [UDPSocket]) -> [String: DiagnosticValue] {
        let byKernel = open.reduce(droppedByKernelOfClosed.load(ordering: .relaxed)) { $0 + $1.droppedByKernel }
        return ["sockets": .number(open.count), "droppedTooLarge": .number(tooLarge.load(ordering: .relaxed)), "droppedByKernel": .number(byKernel)]
    }
}
