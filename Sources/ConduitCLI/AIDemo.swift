import ArgumentParser
import ConduitAIStream
import ConduitClient
import ConduitWire
import Foundation
import NIOCore

/// `conduit demo ai`: a client asks `ai.chat.generate` for an answer and prints the tokens as
/// they stream in, until the push with `complete: true`.
struct AIDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ai", abstract: "An AI token stream to a WebSocket client.")

    @OptionGroup var configurationOptions: ConfigurationOptions
    @Option(help: "The prompt.") var prompt = "Tell me about the tide and the harbour lights."
    @Option(help: "Tokens to ask for (1…\(AIOptions.maxTokensLimit)).") var maxTokens = 60

    /// Checked before a host starts: a wrong option is a usage error (exit 64).
    func validate() throws {
        guard (1...AIOptions.maxTokensLimit).contains(maxTokens) else {
            throw ValidationError("--max-tokens must be 1 to \(AIOptions.maxTokensLimit), not \(maxTokens)")
        }
        guard !prompt.allSatisfy(\.isWhitespace) else { throw ValidationError("--prompt must not be empty") }
    }

    /// What went wrong once the host ran: exit 1, no usage line (the options were fine).
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func run() async throws {
        let (prompt, maxTokens) = (prompt, maxTokens)
        try await Demo.withHostAndClient(configurationOptions, id: "ai-demo") { client in
            let (pushes, arrived) = AsyncStream.makeStream(of: Message.self)
            client.receive { message in
                if message.headers["token"] == "demo-1" { arrived.yield(message) }
            }
            say("ai.chat.generate prompt=\"\(prompt)\" maxTokens=\(maxTokens)")
            guard try client.send(
                ["route": "ai.chat.generate", "token": "demo-1", "prompt": prompt, "maxTokens": "\(maxTokens)"]
            ) else { throw Failure(description: "the socket closed before the request could be sent") }
            let started = ContinuousClock.now
            var tokens = 0
            for await push in pushes {
                if push.headers["error"] != nil { throw Failure(description: "the stream failed: \(String(buffer: push.payload))") }
                tokens += push.payload.readableBytes > 0 ? 1 : 0
                say(String(buffer: push.payload), newline: false)
                if push.headers["complete"] == "true" { break }
            }
            say("\ndone: \(tokens) tokens with complete:true in \(ContinuousClock.now - started)")
        }
    }
}
