import ConduitAIStream
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore

extension HandlerCatalog {
    static let aiTests = HandlerCatalog([HandlerKind(AIStreamHandler.self, name: "ai")])
}

/// Routes for the tests: `ai.*` unpaced, `slow.*` at 200 tokens per second, `paced.*` at 400.
func aiYAML(extraRoutes: String = "") -> String {
    """
    routes:
      - route: ai.*
        handler: ai
        options: {backend: builtin, tokensPerSecond: 0, maxTokens: 64}
      - route: slow.*
        handler: ai
        options: {backend: builtin, tokensPerSecond: 200, maxTokens: 10000}
      - route: paced.*
        handler: ai
        options: {backend: builtin, tokensPerSecond: 400}
    \(extraRoutes)
    """
}

/// An `openai` route named `prefix.*` for a server at `port`.
func openAIRoute(_ prefix: String, port: Int) -> String {
    """
      - route: \(prefix).*
        handler: ai
        options: {backend: openai, url: "http://127.0.0.1:\(port)", model: test-model, apiKey: sk-test, timeoutSeconds: 30}
    """
}

/// What one stream delivered: its token messages and the message that ended it.
struct ReceivedStream {
    var tokens: [Message] = []
    var last: Message?

    var text: String { tokens.map { String(buffer: $0.payload) }.joined() }
    var indices: [Int] { (tokens + [last].compactMap { $0 }).map { Int($0.headers["index"] ?? "") ?? -1 } }
}

extension TestWebSocketClient {
    /// Reads messages into `stream` until one carries `complete: true`.
    func read(into stream: inout ReceivedStream, timeout: TimeAmount = .seconds(10)) async throws {
        while stream.last == nil {
            let message = try await nextMessage(timeout: timeout)
            if message.headers["complete"] == "true" { stream.last = message } else { stream.tokens.append(message) }
        }
    }

    /// Sends a generate request and reads the whole stream.
    func generate(_ headers: Headers, payload: String = "") async throws -> ReceivedStream {
        try await send(headers, payload: Array(payload.utf8))
        var stream = ReceivedStream()
        try await read(into: &stream)
        return stream
    }
}
