import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// A stream belongs to the client id, not to its socket (SPEC §2–§3, seed guideline "reopen").
@Suite("AI stream: reconnects", .serialized, .timeLimit(.minutes(1)))
struct StreamReconnectTests {
    @Test func aStreamContinuesAcrossAReconnectOfTheSameId() async throws {
        try await TestHost.run(yaml: aiYAML(), catalog: .aiTests) { host in
            let request: Headers = ["route": "paced.chat.generate", "token": "r1", "prompt": "stay with me", "maxTokens": "4000"]
            let first = try await host.connect(client: "roamer")
            try await first.send(request)
            var stream = ReceivedStream()
            for _ in 0..<20 { stream.tokens.append(try await first.nextMessage()) }
            // Hang up mid-stream; whatever the host wrote before it saw the close still counts.
            try await first.close()
            while true {
                do {
                    stream.tokens.append(try await first.nextMessage())
                } catch TestClientError.closedByServer, TestClientError.closed {
                    break
                }
            }
            try await waitUntil { host.client("roamer")?.connected == false }
            let before = stream.tokens.count
            // 4,000 tokens at 400/s: the stream runs for 10 s, longer than a close takes even
            // on a machine running the whole suite in parallel (2,000 in 5 s was not, twice).
            #expect(before < 4000, "the stream was still running at the disconnect")

            let second = try await host.connect(client: "roamer")
            try await second.read(into: &stream)
            #expect(stream.tokens.count == 4000)
            #expect(stream.indices == Array(0...4000))
            #expect(stream.last?.headers["aborted"] == nil)

            // Nothing lost: the text equals the same prompt's answer read in one go.
            let reference = try await second.generate(request.replacing("route", with: "ai.chat.generate").replacing("token", with: "r2"))
            #expect(stream.text == reference.text)
        }
    }
}
