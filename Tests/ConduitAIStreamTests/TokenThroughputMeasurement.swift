import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

/// Tokens per second through the whole AI stream path (generator → push → host → WebSocket →
/// test client decode), pacing off. A measurement, not a check of speed: it runs only with
/// CONDUIT_AI_MEASURE=1 (see docs/handlers/ai.md), and it fails only if a token is lost.
@Suite("AI stream: throughput", .serialized)
struct TokenThroughputMeasurement {
    static let count = Int(ProcessInfo.processInfo.environment["CONDUIT_AI_MEASURE_TOKENS"] ?? "") ?? 100_000

    @Test(.enabled(if: ProcessInfo.processInfo.environment["CONDUIT_AI_MEASURE"] == "1"), .timeLimit(.minutes(2)))
    func tokensPerSecondToOneClient() async throws {
        try await TestHost.run(yaml: aiYAML(), catalog: .aiTests) { host in
            let client = try await host.connect(client: "bench")
            let started = ContinuousClock.now
            try await client.send(["route": "ai.chat.generate", "token": "b", "prompt": "measure", "maxTokens": "\(Self.count)"])
            var received = 0
            var bytes = 0
            var gaps = 0
            var nextIndex = 0
            while true {
                let message = try await client.nextMessage()
                let index = Int(message.headers["index"] ?? "") ?? -1
                if index != nextIndex { gaps += 1 }
                nextIndex = index + 1
                if message.headers["complete"] == "true" { break }
                received += 1
                bytes += message.payload.readableBytes
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let dropped = host.client("bench")?.outboundDropped ?? 0
            print("ai-stream throughput: \(received) tokens (\(bytes) payload bytes) in \(String(format: "%.3f", seconds)) s = \(Int(Double(received) / seconds)) tokens/s; gaps \(gaps), outbound drops \(dropped)")
            #expect(received == Self.count)
            #expect(gaps == 0)
        }
    }
}
