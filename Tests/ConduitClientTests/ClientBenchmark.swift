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

            // Throughput: keep `window` echoes in flight, counted by the receive handler.
            let total = 50_000
            let window = 64
            let received = NIOLockedValueBox(0)
            let (arrivals, arrived) = AsyncStream<Void>.makeStream()
            conduit.receive { _ in
                received.withLockedValue { $0 += 1 }
                arrived.yield()
            }
            let start = clock.now
            var sent = 0
            var iterator = arrivals.makeAsyncIterator()
            while sent < min(window, total) {
                try conduit.send(["route": "echo"], payload: payload)
                sent += 1
            }
            while received.withLockedValue({ $0 }) < total {
                _ = await iterator.next()
                if sent < total {
                    try conduit.send(["route": "echo"], payload: payload)
                    sent += 1
                }
            }
            let elapsed = clock.now - start
            let perSecond = Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            print("client bench: payload \(payloadBytes) B; request round trip median \(median), p99 \(p99) over \(rounds); pipelined echo \(Int(perSecond)) msg/s (\(total) messages, window \(window))")
            #expect(received.withLockedValue { $0 } == total)
            conduit.close()
        }
    }
}
