import Foundation
import Histogram

/// One run's numbers.
struct Report: ReportLine {
    let label: String
    let proto: String
    let connections: Int
    let inFlight: Int
    let size: Int
    let seconds: Double
    let messages: Int
    let messagesPerSecond: Double
    /// Payload megabytes (10^6) echoed per second, one way.
    let megabytesPerSecond: Double
    let p50Microseconds: Double
    let p99Microseconds: Double
    let p999Microseconds: Double
    /// The load tool's own CPU use over the run, in cores (it runs one thread: 1.0 is saturated).
    let clientCores: Double
    let serverCores: Double?
    let serverCPUMicrosecondsPerMessage: Double?
    let serverPeakRSSKiB: Int?
    /// The server's anonymous resident memory (heap, stacks) at the end of the run, connections
    /// still open: RSS without the file-backed pages of its binary and shared libraries.
    let serverAnonRSSKiB: Int?
    /// "client" when the load tool used ≥ 90 % of its core: the server may be faster than measured.
    let bottleneck: String
    let errors: [String]

    init(
        label: String, proto: String, connections: Int, inFlight: Int, size: Int, seconds: Double, messages: Int,
        histogram: Histogram<UInt64>, clientCPUSeconds: Double, serverCPUSeconds: Double?, serverPeakRSSKiB: Int?,
        serverAnonRSSKiB: Int?, errors: [String]
    ) {
        self.label = label
        self.proto = proto
        self.connections = connections
        self.inFlight = inFlight
        self.size = size
        self.seconds = seconds
        self.messages = messages
        messagesPerSecond = Double(messages) / seconds
        megabytesPerSecond = Double(messages) * Double(size) / seconds / 1e6
        p50Microseconds = Double(histogram.valueAtPercentile(50)) / 1e3
        p99Microseconds = Double(histogram.valueAtPercentile(99)) / 1e3
        p999Microseconds = Double(histogram.valueAtPercentile(99.9)) / 1e3
        clientCores = clientCPUSeconds / seconds
        serverCores = serverCPUSeconds.map { $0 / seconds }
        serverCPUMicrosecondsPerMessage = serverCPUSeconds.map { messages > 0 ? $0 * 1e6 / Double(messages) : 0 }
        self.serverPeakRSSKiB = serverPeakRSSKiB
        self.serverAnonRSSKiB = serverAnonRSSKiB
        bottleneck = Self.bottleneck(clientCores: clientCores, serverCores: serverCores, neither: "neither (latency-bound)")
        self.errors = errors
    }

    var summary: String {
        let cpu = serverCPUMicrosecondsPerMessage.map { String(format: "%.2f µs server CPU/msg", $0) } ?? "server CPU unknown"
        return String(
            format: "%@ %@ %d×%d×%dB: %.0f msg/s, %.1f MB/s, p50 %.1f µs, p99 %.1f µs, p999 %.1f µs, %@, client %.2f cores, bottleneck %@",
            label, proto, connections, inFlight, size, messagesPerSecond, megabytesPerSecond,
            p50Microseconds, p99Microseconds, p999Microseconds, cpu, clientCores, bottleneck
        )
    }
}
