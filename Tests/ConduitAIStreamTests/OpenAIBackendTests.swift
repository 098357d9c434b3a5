import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The `openai` backend against a local OpenAI-compatible server started by each test.
@Suite("AI stream: openai backend", .serialized, .timeLimit(.minutes(1)))
struct OpenAIBackendTests {
    static let tokens = ["Hel", "lo", ",", " wörld", " \"quoted\"", " back\\slash", " 🚀", "\n", "done", "."]

    @Test func streamsTheTokensTheServerSent() async throws {
        try await FakeOpenAIServer.run(.tokens(Self.tokens)) { server in
            try await TestHost.run(yaml: aiYAML(extraRoutes: openAIRoute("llm", port: server.port)), catalog: .aiTests) { host in
                let client = try await host.connect()
                let stream = try await client.generate(
                    ["route": "llm.chat.generate", "token": "o1", "maxTokens": "50"], payload: "Say hello")
                #expect(stream.tokens.map { String(buffer: $0.payload) } == Self.tokens)
                #expect(stream.indices == Array(0...Self.tokens.count))
                #expect(stream.tokens.allSatisfy { $0.headers["token"] == "o1" && $0.headers["source"] == "llm.chat.generate" })
                #expect(stream.last?.headers["error"] == nil)

                let request = try #require(server.requests.first)
                #expect(request.head.method == .POST)
                #expect(request.head.uri == "/v1/chat/completions")
                #expect(request.head.headers["Authorization"] == ["Bearer sk-test"])
                let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
                #expect(body["model"] as? String == "test-model")
                #expect(body["stream"] as? Bool == true)
                #expect(body["max_tokens"] as? Int == 50)
                let messages = try #require(body["messages"] as? [[String: String]])
                #expect(messages == [["role": "user", "content": "Say hello"]])
            }
        }
    }

    /// Streams beyond eight at once to one upstream get their connections too: the HTTP
    /// client kept its default of eight per host, and a ninth stream waited, without a token
    /// or an error, until one of the eight ended (a client that stops reading holds its eight).
    @Test func moreStreamsThanEightToOneUpstreamAllStart() async throws {
        try await FakeOpenAIServer.run(.holding(["first"])) { server in
            let route = openAIRoute("llm", port: server.port).replacingOccurrences(of: "timeoutSeconds: 30", with: "timeoutSeconds: 300")
            try await TestHost.run(yaml: aiYAML(extraRoutes: route), catalog: .aiTests) { host in
                let client = try await host.connect()
                for n in 0..<12 { try await client.send(["route": "llm.chat.generate", "token": "s\(n)", "maxTokens": "5"], payload: Array("hi".utf8)) }
                var started = Set<String>()
                while started.count < 12 {
                    let token = try await client.nextMessage(timeout: .seconds(20))
                    started.insert(token.headers["token"] ?? "")
                }
                #expect(started == Set((0..<12).map { "s\($0)" }))
            }
        }
    }

    @Test func maxTokensCutsALongerAnswer() async throws {
        try await FakeOpenAIServer.run(.tokens(Self.tokens)) { server in
            try await TestHost.run(yaml: aiYAML(extraRoutes: openAIRoute("llm", port: server.port)), catalog: .aiTests) { host in
                let client = try await host.connect()
                let stream = try await client.generate(["route": "llm.chat.generate", "token": "o2", "prompt": "hi", "maxTokens": "4"])
                #expect(stream.tokens.map { String(buffer: $0.payload) } == Array(Self.tokens.prefix(4)))
                #expect(stream.last?.headers["error"] == nil)
            }
        }
    }

    @Test func aBackendThatIsDownIsUnavailable() async throws {
        let refusing = try RefusingPort()
        try await TestHost.run(yaml: aiYAML(extraRoutes: openAIRoute("llm", port: refusing.port)), catalog: .aiTests) { host in
            withExtendedLifetime(refusing) {}
            let client = try await host.connect()
            let asked = ContinuousClock.now
            let stream = try await client.generate(["route": "llm.chat.generate", "token": "down", "prompt": "hi"])
            // Well under the connect timeout (30 s) it would otherwise take, on a loaded machine.
            #expect(ContinuousClock.now - asked < .seconds(20), "reported at once, not after the connect timeout")
            #expect(stream.tokens.isEmpty)
            let error = try #require(stream.last)
            #expect(error.headers["error"] == "UnavailableError")
            #expect(error.headers["token"] == "down")
            #expect(error.headers["route"] == "llm.chat.generate")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: error.payload).utf8)) as? [String: [String: String]])
            #expect(body["err"]?["type"] == "UnavailableError")
            #expect(body["err"]?["message"]?.contains("unreachable") == true)
        }
    }

    @Test func aMalformedEventEndsTheStreamWithAnUpstreamError() async throws {
        try await FakeOpenAIServer.run(.malformed(after: ["one", " two"])) { server in
            try await TestHost.run(yaml: aiYAML(extraRoutes: openAIRoute("llm", port: server.port)), catalog: .aiTests) { host in
                let client = try await host.connect()
                let stream = try await client.generate(["route": "llm.chat.generate", "token": "bad", "prompt": "hi"])
                #expect(stream.tokens.map { String(buffer: $0.payload) } == ["one", " two"])
                let error = try #require(stream.last)
                #expect(error.headers["error"] == "UpstreamError")
                #expect(error.headers["token"] == "bad")
                #expect(String(buffer: error.payload).contains("malformed event"))
            }
        }
    }

    /// `data:` lines without the blank line that ends an event were joined without end.
    @Test func anEventThatNeverEndsIsAnUpstreamErrorNotMemory() async throws {
        try await FakeOpenAIServer.run(.endlessEvent(lines: 40)) { server in
            try await TestHost.run(yaml: aiYAML(extraRoutes: openAIRoute("llm", port: server.port)), catalog: .aiTests) { host in
                let client = try await host.connect()
                let stream = try await client.generate(["route": "llm.chat.generate", "token": "endless", "prompt": "hi"])
                let error = try #require(stream.last)
                #expect(error.headers["error"] == "UpstreamError")
                #expect(String(buffer: error.payload).contains("an event's data over 1048576 bytes"), "\(String(buffer: error.payload))")
            }
        }
    }

    @Test func aNon200StatusIsAnUpstreamErrorWithTheStatus() async throws {
        try await FakeOpenAIServer.run(.status(.notFound)) { server in
            try await TestHost.run(yaml: aiYAML(extraRoutes: openAIRoute("llm", port: server.port)), catalog: .aiTests) { host in
                let client = try await host.connect()
                let stream = try await client.generate(["route": "llm.chat.generate", "token": "404", "prompt": "hi"])
                let error = try #require(stream.last)
                #expect(error.headers["error"] == "UpstreamError")
                #expect(String(buffer: error.payload).contains("404"))
                #expect(String(buffer: error.payload).contains("model not found"))
            }
        }
    }

    @Test func anOpenAIRouteWithoutURLFailsAtStartUp() async throws {
        let yaml = "routes:\n  - route: llm.*\n    handler: ai\n    options: {backend: openai, model: m}\n"
        await #expect(throws: (any Error).self) {
            try await TestHost.run(yaml: yaml, catalog: .aiTests) { _ in }
        }
    }
}
