import ArgumentParser
import ConduitCLI
import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore

/// Tokens per second through the whole AI stream path (generator → push → host → WebSocket →
/// client decode), pacing off; fails if a token is lost or an index skipped.
struct AICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ai", abstract: "Tokens per second from the built-in generator, unpaced, to one WebSocket client."
    )

    @Option(help: "Tokens to ask for.") var tokens = 100_000

    static let yaml = hostYAML(routes: [("ai.*", handler: "ai", options: "{backend: builtin, tokensPerSecond: 0, maxTokens: 64}")])

    func run() async throws {
        let count = tokens
        try await TestHost.run(yaml: Self.yaml, catalog: .builtIn) { host in
            let client = try await host.connect(client: "bench")
            let started = ContinuousClock.now
            try await client.send(["route": "ai.chat.generate", "token": "b", "prompt": "measure", "maxTokens": "\(count)"])
            var received = 0
            var bytes = 0
            var gaps = 0
            var nextIndex = 0
            while true {
                let message = try await client.nextMessage()
                if let error = message.headers["error"] {
                    throw MeasurementFailure("\(error): \(String(buffer: message.payload))")
                }
                let index = Int(message.headers["index"] ?? "") ?? -1
                if index != nextIndex { gaps += 1 }
                nextIndex = index + 1
                if message.headers["complete"] == "true" { break }
                received += 1
                bytes += message.payload.readableBytes
            }
            let seconds = (ContinuousClock.now - started).inSeconds
            let dropped = host.client("bench")?.outboundDropped ?? 0
            print("ai-stream throughput: \(received) tokens (\(bytes) payload bytes) in \(String(format: "%.3f", seconds)) s = "
                + "\(Int(Double(received) / seconds)) tokens/s; gaps \(gaps), outbound drops \(dropped)")
            try require(received == count, "\(received) of \(count) tokens came")
            try require(gaps == 0, "\(gaps) gaps in the token indices")
        }
    }
}
