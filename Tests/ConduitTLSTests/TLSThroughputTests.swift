import ConduitTLS
import ConduitTesting
import Foundation
import Testing

/// Opt-in measurement: `CONDUIT_TLS_BENCH_MIB=16 swift test --filter TLSThroughput` sends that
/// many MiB through WebSocket → host → TLS bridge → echo service → back, in writes of 65,535
/// bytes with at most 1 MiB unanswered, and prints the rate (wall time, and per CPU-second).
@Suite("TLS throughput", .serialized, .timeLimit(.minutes(5)))
struct TLSThroughputTests {
    static let mebibytes = ProcessInfo.processInfo.environment["CONDUIT_TLS_BENCH_MIB"].flatMap(Int.init)

    @Test(.enabled(if: mebibytes != nil, "set CONDUIT_TLS_BENCH_MIB to measure"))
    func echoThroughTheBridge() async throws {
        let total = (Self.mebibytes ?? 0) << 20
        let window = 1 << 20
        try await TestHost.run(yaml: TLSBridgeTests.yaml(), catalog: .tlsTests) { host in
            let tls = TLSSession(try await host.connect(client: "bench"))
            _ = try await TLSBridgeTests.connectToEcho(tls)
            let piece = (0..<65_535).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let start = ContinuousClock.now
            let cpuAtStart = processCPUSeconds()
            var sent = 0
            while sent < total {
                let size = min(piece.count, total - sent)
                try await tls.send("tls.write", payload: Array(piece[..<size]))
                sent += size
                try await tls.read { sent - $0.received.count <= window }
            }
            try await tls.read { $0.received.count >= total }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let cpu = processCPUSeconds() - cpuAtStart
            print("TLS echo through the bridge: \(total >> 20) MiB in \(String(format: "%.2f", seconds)) s = "
                + "\(String(format: "%.1f", Double(total) / 1e6 / seconds)) MB/s; CPU (host, echo service and test "
                + "client together) \(String(format: "%.2f", cpu)) s = \(String(format: "%.1f", Double(total) / 1e6 / cpu)) MB per CPU-second")
            #expect(tls.received.count == total)
            let intact = (0..<tls.received.count).allSatisfy { tls.received[$0] == piece[$0 % piece.count] }
            #expect(intact)
        }
    }
}

/// CPU time of this process so far (`clock()`, in µs as POSIX fixes CLOCKS_PER_SEC): on a
/// shared machine, a steadier figure than wall time.
private func processCPUSeconds() -> Double {
    Double(clock()) / 1_000_000
}
