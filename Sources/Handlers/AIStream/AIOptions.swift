public import ConduitKit

/// The `ai.*` route's options (YAML), checked when the route table is built so a mistake
/// fails at start-up with file, line and column.
public struct AIOptions: HandlerOptions {
    public enum Backend: String, OptionChoice, Encodable, Sendable {
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

    public var backend = Backend.builtin
    /// Tokens per answer unless the request's `maxTokens` header says otherwise.
    public var maxTokens = 256
    /// The built-in generator's pace; 0 = as fast as it can.
    public var tokensPerSecond = 0.0
    /// The `openai` backend's base URL, model, key and timeout.
    public var url: String?
    public var model = "default"
    public var apiKey: String?
    public var timeoutSeconds = 30
    /// Streams running at once, for all ids together: each holds its prompt and a task (and,
    /// with `openai`, a connection to the backend), and a client with the key may start as
    /// many as it likes. 10,000 streams with 60 KB prompts held 633 MB.
    public var maxStreams = 256
    /// How long a stream waits for a client that takes no more (congested: the host's
    /// high-water mark) before it ends with `UnavailableError`: a client that stopped reading
    /// kept its streams, and their places among `maxStreams`, for good.
    public var congestionTimeoutSeconds = 30.0

    /// The largest `maxTokens` a route or a request may ask for.
    public static let maxTokensLimit = 1_000_000

    public init() {}

    /// Set exactly when `backend` is `openai`.
    public var upstream: Upstream? {
        guard backend == .openai, let url else { return nil }
        return Upstream(url: url.hasSuffix("/") ? String(url.dropLast()) : url, model: model, apiKey: apiKey, timeoutSeconds: timeoutSeconds)
    }

    public func validate() throws(InvalidOption) {
        guard (1...Self.maxTokensLimit).contains(maxTokens) else { throw InvalidOption("maxTokens", "must be 1…\(Self.maxTokensLimit)") }
        guard (1...1_000_000).contains(maxStreams) else { throw InvalidOption("maxStreams", "must be 1 to 1000000") }
        try InvalidOption.checkSeconds("congestionTimeoutSeconds", congestionTimeoutSeconds, maximum: 86_400)
        // Slower than a token a thousand seconds, a token's wait (index / pace) could pass what
        // a duration holds, which traps.
        guard tokensPerSecond == 0 || (tokensPerSecond >= 0.001 && tokensPerSecond <= 1_000_000) else {
            throw InvalidOption("tokensPerSecond", "must be 0 (no pacing) or 0.001 to 1000000")
        }
        guard backend == .openai else { return }
        guard let url, url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw InvalidOption(url == nil ? "backend" : "url", "needs an http:// or https:// 'url' for backend 'openai', e.g. http://127.0.0.1:11434")
        }
        guard (1...86_400).contains(timeoutSeconds) else { throw InvalidOption("timeoutSeconds", "must be 1 to 86400") }
    }
}
