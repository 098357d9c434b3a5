import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// Opt-in measurement (`CONDUIT_CLIENT_BENCH=1`): echo round trips of the Swift client against
/// a real host in this process. Prints the median round trip of sequential `request`s and the
/// messages per second of pipelined `send`s (a window of messages in flight).
@Suite("Client: benchmark", .serialized, .enabled(if: ProcessInfo.processInfo.environment["CONDUIT_CLIENT_BENCH"] == "1"))
struct ClientBenchmark {
    @Test(.timeLimit(.minutes(2))) func echoRoundTripAndThroughput() async throws {
        let payloadBytes = Int(ProcessInfo.processInfo.environment["CONDUIT_CLIENT_BENCH_BYTES"] ?? "") ?? 64
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "bench")
            try await conduit.connect()
            let payload = ByteBuffer(repeating: 0x61, count: payloadBytes)

            let rounds = 5_000
            var samples: [Duration] = []
            samples.reserveCapacity(rounds)
            let clock = ContinuousClock()
            for _ in 0..<rounds {
                let started = clock.now
                _ = try await conduit.request(route: "echo", payload: payload)
                samples.append(clock.now - started)
            }
            samples.sort()
            let median = samples[rounds / 2]
            let p99 = samples[rounds * 99 / 100]

            // Throughput: `window` echoes in flight; the receive handler sends the next one as
            // each echo arrives, so nothing but the client and the host is measured.
            let total = 50_000
            let window = 64
            let counts = NIOLockedValueBox((sent: 0, received: 0))
            let (done, finish) = AsyncStream<Void>.makeStream()
            conduit.receive { _ in
                let (sendMore, finished) = counts.withLockedValue { counts in
                    counts.received += 1
                    let more = counts.sent < total
                    if more { counts.sent += 1 }
                    return (more, counts.received == total)
                }
                if sendMore { _ = try? conduit.send(["route": "echo"], payload: payload) }
                if finished { finish.finish() }
            }
            let start = clock.now
            for _ in 0..<window {
                counts.withLockedValue { $0.sent += 1 }
                try conduit.send(["route": "echo"], payload: payload)
            }
            for await _ in done {}
            let elapsed = clock.now - start
            let perSecond = Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            print("client bench: payload \(payloadBytes) B; request round trip median \(median), p99 \(p99) over \(rounds); pipelined echo \(Int(perSecond)) msg/s (\(total) messages, window \(window))")
            #expect(counts.withLockedValue { $0.received } == total)
            conduit.close()
        }
    }
}
