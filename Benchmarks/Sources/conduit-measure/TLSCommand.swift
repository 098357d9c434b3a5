import ArgumentParser
import ConduitCLI
import ConduitTesting
import Foundation

/// Sends `mib` MiB through WebSocket → host → TLS bridge → the handler's echo service → back,
/// in writes of 65,535 bytes with at most 1 MiB unanswered; prints the rate in wall time and
/// per CPU-second, and checks every byte.
struct TLSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls", abstract: "Echo through the TLS bridge and its echo service: MB/s and MB per CPU-second."
    )

    @Option(help: "MiB to send.") var mib = 16

    static let yaml = hostYAML(
        limits: ["clientGraceSeconds: 30"], routes: [("tls.*", handler: "tls", options: "{echoService: {enabled: true}}")]
    )

    func validate() throws {
        guard mib > 0 else { throw ValidationError("--mib must be at least 1") }
    }

    func run() async throws {
        let total = mib << 20
        let window = 1 << 20
        try await TestHost.run(yaml: Self.yaml, catalog: .builtIn) { host in
            let tls = TLSSession(try await host.connect(client: "bench"))
            try await tls.connectToEcho()
            let piece = (0..<65_535).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let start = ContinuousClock.now
            let cpuAtStart = processCPUSeconds()
            var sent = 0
            while sent < total {
                let size = min(piece.count, total - sent)
                try await tls.send("tls.write", payload: Array(piece[..<size]))
                sent += size
                try await tls.readUnlessEnded { sent - $0.received.count <= window }
            }
            try await tls.readUnlessEnded { $0.received.count >= total }
            let seconds = (ContinuousClock.now - start).inSeconds
            let cpu = processCPUSeconds() - cpuAtStart
            print("TLS echo through the bridge: \(total >> 20) MiB in \(String(format: "%.2f", seconds)) s = "
                + "\(String(format: "%.1f", Double(total) / 1e6 / seconds)) MB/s; CPU (host, echo service and client "
                + "together) \(String(format: "%.2f", cpu)) s = \(String(format: "%.1f", Double(total) / 1e6 / cpu)) MB per CPU-second")
            try require(tls.received.count == total, "\(tls.received.count) of \(total) bytes came back")
            let intact = tls.received.indices.allSatisfy { tls.received[$0] == piece[$0 % piece.count] }
            try require(intact, "the bytes that came back differ from those written")
        }
    }
}

/// CPU time of this process so far (`clock()`, in µs as POSIX fixes CLOCKS_PER_SEC): on a
/// shared machine, a steadier figure than wall time.
private func processCPUSeconds() -> Double {
    Double(clock()) / 1_000_000
}
