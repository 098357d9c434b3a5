import Foundation
import NIOCore

/// One `udp` run's numbers.
struct UDPReport: ReportLine {
    let label: String
    let size: Int
    let window: Int
    let sent: Int
    /// `udp.data` pushes the tool received, and what the host's socket counted (`udp.getState`).
    let pushes: Int
    let receivedByHost: Int
    let lost: Int
    let outOfOrder: Int
    /// From the first datagram sent to the last push received.
    let seconds: Double
    let datagramsPerSecond: Double
    /// The load tool's CPU use in cores (one event loop thread: 1.0 is saturated).
    let clientCores: Double
    let serverCores: Double?
    let serverCPUMicrosecondsPerDatagram: Double?
    let bottleneck: String
    let errors: [String]

    init(
        label: String, size: Int, window: Int, flow: DatagramFlow, receivedByHost: Int,
        clientCPUSeconds: Double, serverCPUSeconds: Double?
    ) {
        self.label = label
        self.size = size
        self.window = window
        let pushes = flow.received
        let seconds = Double((flow.lastArrival - flow.started).nanoseconds) / 1e9
        sent = flow.sent
        self.pushes = pushes
        self.receivedByHost = receivedByHost
        lost = flow.sent - pushes
        outOfOrder = flow.outOfOrder
        self.seconds = seconds
        datagramsPerSecond = seconds > 0 ? Double(pushes) / seconds : 0
        clientCores = clientCPUSeconds / seconds
        serverCores = serverCPUSeconds.map { $0 / seconds }
        serverCPUMicrosecondsPerDatagram = serverCPUSeconds.map { pushes > 0 ? $0 * 1e6 / Double(pushes) : 0 }
        bottleneck = Self.bottleneck(clientCores: clientCores, serverCores: serverCores, neither: "neither (window-bound)")
        errors = flow.errors
    }

    var summary: String {
        let cpu = serverCPUMicrosecondsPerDatagram.map { String(format: "%.2f µs server CPU/datagram", $0) } ?? "server CPU unknown"
        return String(
            format: "%@ udp %d×%dB window %d: %.0f datagrams/s, %d lost, %d out of order, %@, client %.2f cores, bottleneck %@",
            label, sent, size, window, datagramsPerSecond, lost, outOfOrder, cpu, clientCores, bottleneck
        )
    }
}
