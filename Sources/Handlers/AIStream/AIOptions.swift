/// The `ai.*` route's options (YAML), checked when the route table is built so a mistake
/// fails at start-up with file, line and column.
public struct AIOptions: Decodable, Sendable {
    public enum Backend: String, Decodable, Sendable {
        /// The embedded generator: no download, deterministic for a prompt.
        case builtin
        /// Any OpenAI-compatible `/v1/chat/completions` endpoint that streams server-sent events.
        case openai
    }

    /// Where an `openai` backend lives and how long to wait for it.
    public struct Upstream: Sendable {
        /// Base URL, e.g. `http://127.0.0.1:11434` (Ollama) or `http://127.0.0.1:8080` (llama.cpp).
        public let url: String
        public let model: String
        /// Sent as `Authorization: Bearer <apiKey>` when set.
        public let apiKey: String?
        /// Connect timeout, and the longest silence between two reads of the stream.
        public let timeoutSeconds: Int
    }

    public let backend: Backend
    /// Tokens per answer unless the request's `maxTokens` header says otherwise.
    public let maxTokens: Int
    /// The built-in generator's pace; 0 = as fast as it can.
    public let tokensPerSecond: Double
    /// Set exactly when `backend` is `openai`.
    public let upstream: Upstream?

    /// The largest `maxTokens` a route or a request may ask for.
    public static let maxTokensLimit = 1_000_000

    private enum CodingKeys: String, CodingKey {
        case backend, maxTokens, tokensPerSecond, url, model, apiKey, timeoutSeconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        backend = try container.decodeIfPresent(Backend.self, forKey: .backend) ?? .builtin
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 256
        guard (1...Self.maxTokensLimit).contains(maxTokens) else {
            throw DecodingError.dataCorruptedError(
                forKey: .maxTokens, in: container, debugDescription: "maxTokens must be 1…\(Self.maxTokensLimit)")
        }
        tokensPerSecond = try container.decodeIfPresent(Double.self, forKey: .tokensPerSecond) ?? 0
        guard tokensPerSecond >= 0, tokensPerSecond <= 1_000_000 else {
            throw DecodingError.dataCorruptedError(
                forKey: .tokensPerSecond, in: container, debugDescription: "tokensPerSecond must be 0 (no pacing) to 1000000")
        }
        guard backend == .openai else {
            upstream = nil
            return
        }
        guard let url = try container.decodeIfPresent(String.self, forKey: .url),
              url.hasPrefix("http://") || url.hasPrefix("https://")
        else {
            throw DecodingError.dataCorruptedError(
                forKey: .url, in: container, debugDescription: "backend 'openai' needs 'url', e.g. http://127.0.0.1:11434")
        }
        let timeoutSeconds = try container.decodeIfPresent(Int.self, forKey: .timeoutSeconds) ?? 30
        guard (1...86_400).contains(timeoutSeconds) else {
            throw DecodingError.dataCorruptedError(
                forKey: .timeoutSeconds, in: container, debugDescription: "timeoutSeconds must be 1 to 86400")
        }
        upstream = Upstream(
            url: url.hasSuffix("/") ? String(url.dropLast()) : url,
            model: try container.decodeIfPresent(String.self, forKey: .model) ?? "default",
            apiKey: try container.decodeIfPresent(String.self, forKey: .apiKey),
            timeoutSeconds: timeoutSeconds
        )
    }
}
