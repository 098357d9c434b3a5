import AsyncHTTPClient
import ConduitKit
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The `openai` backend: `POST {url}/v1/chat/completions` with `"stream": true` to any
/// OpenAI-compatible server (llama.cpp, Ollama, vLLM, …), read as server-sent events; each
/// `choices[0].delta.content` is a token, `data: [DONE]` ends the answer.
///
/// Errors: no connection (refused, unreachable, connect timeout) → `UnavailableError`; a
/// silence longer than `timeoutSeconds` → `TimeoutError`; a non-200 status, a malformed or
/// error event, or a stream cut before `[DONE]` → `UpstreamError`.
final class OpenAIBackend: TokenBackend {
    private let upstream: AIOptions.Upstream
    /// Streams at once (`maxStreams`), each on a connection of its own to the upstream.
    private let maxStreams: Int
    private let eventLoopGroup: any EventLoopGroup
    /// Made in `start`, shut down in `stop`: a route table that is only checked opens nothing.
    private let client = NIOLockedValueBox<HTTPClient?>(nil)

    init(upstream: AIOptions.Upstream, maxStreams: Int, eventLoopGroup: any EventLoopGroup) {
        self.upstream = upstream
        self.maxStreams = maxStreams
        self.eventLoopGroup = eventLoopGroup
    }

    func start() {
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .seconds(Int64(upstream.timeoutSeconds)), read: .seconds(Int64(upstream.timeoutSeconds))))
        // A backend that is down is reported at once, not retried until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        // One connection a stream: at the client's default of 8 a host, a ninth stream waited,
        // answered nothing, until one of the eight ended (a client that stops reading holds its
        // streams for the congestion timeout).
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = maxStreams
        let made = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
        client.withLockedValue { $0 = made }
    }

    func shutdown() async {
        let made = client.withLockedValue { client in
            defer { client = nil }
            return client
        }
        try? await made?.shutdown()
    }

    func generate(prompt: String, maxTokens: Int, emit: (String) async -> Void) async throws {
        guard let client = client.withLockedValue({ $0 }) else {
            throw ConduitError.unavailable("the AI backend is not running")
        }
        let response = try await open(client, prompt: prompt, maxTokens: maxTokens)
        var parser = ServerSentEvents()
        var emitted = 0
        do {
            for try await chunk in response.body {
                for data in try parser.feed(chunk) {
                    if data == "[DONE]" { return }
                    guard let content = try Self.content(of: data) else { continue }
                    await emit(content)
                    emitted += 1
                    if emitted == maxTokens { return }
                }
            }
        } catch let error as ConduitError {
            throw error
        } catch let tooLong as ServerSentEvents.TooLong {
            throw ConduitError.upstream("the AI backend sent \(tooLong.what) over \(ServerSentEvents.maxBytes) bytes")
        } catch {
            try Task.checkCancellation()
            throw Self.streamError(error)
        }
        throw ConduitError.upstream("the AI backend closed the stream before 'data: [DONE]'")
    }

    private func open(_ client: HTTPClient, prompt: String, maxTokens: Int) async throws -> HTTPClientResponse {
        let endpoint = upstream.url + "/v1/chat/completions"
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let apiKey = upstream.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        let body = ChatRequest(
            model: upstream.model, messages: [.init(role: "user", content: prompt)], stream: true, maxTokens: maxTokens)
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response: HTTPClientResponse
        do {
            // No overall deadline: an answer may stream for minutes; the read timeout bounds silences.
            response = try await client.execute(request, deadline: .distantFuture)
        } catch {
            try Task.checkCancellation()
            throw Self.connectError(error, endpoint: endpoint)
        }
        guard response.status == .ok else {
            let text = await Self.start(of: response.body)
            throw ConduitError.upstream("the AI backend answered \(response.status.code) \(response.status.reasonPhrase): \(text)")
        }
        return response
    }

    /// The first 512 bytes of an error's body, whatever its length (collected up to a limit, a
    /// body past it was an error, and the message said nothing after its colon).
    private static func start(of body: HTTPClientResponse.Body) async -> String {
        var start = ByteBuffer()
        do {
            for try await var part in body {
                start.writeBuffer(&part)
                if start.readableBytes >= 512 { break }
            }
        } catch {}
        return String(String(buffer: start).prefix(512))
    }

    /// The token in one event's data; nil for events without content (the role, the finish reason).
    private static func content(of data: String) throws(ConduitError) -> String? {
        let chunk: ChatChunk
        do {
            chunk = try JSONDecoder().decode(ChatChunk.self, from: Data(data.utf8))
        } catch {
            throw .upstream("the AI backend sent a malformed event: \(data.prefix(200))")
        }
        if let failure = chunk.error {
            throw .upstream("the AI backend reported an error: \(failure.message ?? "no message")")
        }
        guard let content = chunk.choices?.first?.delta?.content, !content.isEmpty else { return nil }
        return content
    }

    private static func connectError(_ error: any Error, endpoint: String) -> ConduitError {
        if let error = error as? HTTPClientError, error == .readTimeout {
            return .timeout("the AI backend at \(endpoint) did not answer in time")
        }
        return .unavailable("the AI backend at \(endpoint) is unreachable: \(error)")
    }

    private static func streamError(_ error: any Error) -> ConduitError {
        if let error = error as? HTTPClientError, error == .readTimeout {
            return .timeout("the AI backend stopped sending mid-answer")
        }
        return .upstream("the AI backend's stream broke: \(error)")
    }
}

/// The request body (OpenAI chat completions).
private struct ChatRequest: Encodable {
    struct Message: Encodable {
        let role: String
        let content: String
    }

    let model: String
    let messages: [Message]
    let stream: Bool
    let maxTokens: Int

    private enum CodingKeys: String, CodingKey {
        case model, messages, stream
        case maxTokens = "max_tokens"
    }
}

/// One streamed chunk, as far as it matters here.
private struct ChatChunk: Decodable {
    struct Choice: Decodable {
        struct Delta: Decodable { let content: String? }
        let delta: Delta?
    }

    struct Failure: Decodable { let message: String? }

    let choices: [Choice]?
    let error: Failure?
}
