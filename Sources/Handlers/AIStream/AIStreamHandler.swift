public import ConduitKit
import ConduitWire
import NIOCore

/// `ai.*`: answers a prompt as a stream of token pushes (SPEC §5 "AI stream").
///
/// - `ai.chat.generate`: the prompt in the `prompt` header or the payload, the request's
///   `token` naming the stream, optional `maxTokens` header (else the route's). No separate
///   acknowledgement: the tokens arrive as pushes to the requesting id (see `TokenPushes`),
///   the last with `complete: true`; a bad request is an error reply, a failure mid-stream an
///   error push with the token.
/// - `ai.chat.abort`: `stream` header (or `token`) naming a stream of the same client id;
///   the stream ends with `complete: true, aborted: true`, then the reply is
///   `{"data":{"aborted":true}}`; an unknown stream is `NotFoundError`.
///
/// How it follows the transport's integration guidelines (seed, "Integration Guidelines"):
/// - *Receive before commands*: tokens are pushes, not replies, so a client must have its
///   message handler in place before it sends `ai.chat.generate`; nothing else is answered.
/// - *Graceful degradation*: pushes go through the host's per-id buffer, so a client whose
///   socket is down (or that reads through the IPC fallback stream) loses nothing: while its
///   queue is congested the stream waits (`TokenPushes`), up to `congestionTimeoutSeconds`.
/// - *Reopen*: a stream belongs to the client id, not the socket: it keeps running across a
///   disconnect or a replacement, and a reconnect receives the rest in order. Nothing needs
///   reissuing on `reopen`; only `expired` (the id stayed away past the grace period) ends
///   the id's streams.
/// - *Pause/resume*: pausing the socket server closes sockets, which is a disconnect like
///   any other: streams go on into the buffer and resume delivery when the app resumes.
/// - *Stable ids*: streams are keyed by client id and token, so only the same id can abort
///   or receive them; reuse the id across reconnects.
public struct AIStreamHandler: ConduitHandler {
    public typealias Options = AIOptions

    private let options: AIOptions
    private let backend: any TokenBackend
    private let streams: StreamRegistry
    private let context: HandlerContext
    /// Under an exact route (`ai.chat.generate`), the one operation it names; nil under a prefix.
    private let operation: String?

    public init(options: AIOptions, context: HandlerContext) throws {
        self.options = options
        self.context = context
        operation = try Self.operation(ofExactMount: context.route)
        streams = StreamRegistry(limit: options.maxStreams)
        switch (options.backend, options.upstream) {
        case (.openai, let upstream?):
            backend = OpenAIBackend(upstream: upstream, maxStreams: options.maxStreams, eventLoopGroup: context.eventLoopGroup)
        default:
            backend = BuiltinGenerator(tokensPerSecond: options.tokensPerSecond)
        }
    }

    public func start() async throws { backend.start() }

    public func stop() async {
        await streams.abortAll()
        await backend.shutdown()
    }

    public func clientEvent(_ event: ClientEvent) {
        if case .expired(let client) = event { streams.cancelAll(of: client) }
    }

    public func handle(_ request: Request, responder: Responder) throws {
        switch operation ?? request.operation {
        case "chat.generate": try generate(request, responder: responder)
        case "chat.abort": try abort(request, responder: responder)
        default: throw ConduitError.notFound("no AI operation '\(request.route)'; known: \(context.route("chat.generate")), \(context.route("chat.abort"))")
        }
    }

    /// An exact route mounts the generator alone: its last two components are `chat.generate`.
    /// Another is refused at load: one naming no operation answered every request
    /// `NotFoundError`, and an exact `chat.abort` has no streams to abort (each route's handler
    /// keeps its own).
    private static func operation(ofExactMount route: String) throws(ConduitError) -> String? {
        guard !route.hasSuffix(".*") else { return nil }
        guard route.split(separator: ".").suffix(2).joined(separator: ".") == "chat.generate" else {
            throw .badRequest("the ai handler's exact route '\(route)' must end in chat.generate (the generator alone); for chat.abort too, mount a prefix ('ai.*')")
        }
        return "chat.generate"
    }

    private func generate(_ request: Request, responder: Responder) throws(ConduitError) {
        guard let correlation = request.headers.correlation else {
            throw .badRequest("'\(request.route)' needs a 'token' header: it names the stream")
        }
        let prompt = request.headers["prompt"] ?? request.payloadString
        guard !prompt.allSatisfy(\.isWhitespace) else {
            throw .badRequest("'\(request.route)' needs a prompt: a 'prompt' header or the payload")
        }
        let maxTokens = try maxTokens(of: request)
        let backend = backend
        let output = TokenPushes(
            pushes: context.pushes, client: request.client, route: request.route, correlation: correlation,
            congestionTimeout: .seconds(options.congestionTimeoutSeconds), eventLoop: context.eventLoopGroup.next())
        let key = StreamRegistry.Key(client: request.client, token: ExactText(correlation.value))
        // The stream keeps its prompt while it runs: it holds the request's bytes of the host's
        // budget until it ends (up to `maxStreams` prompts of 16 MiB were outside it).
        responder.holdWhileRunning { [streams] end in
            // `cancel: <token>` stops the stream as `chat.abort` does.
            let cancellation = request.onCancel { Task { _ = await streams.abort(key) } }
            let started = streams.start(key) {
                defer { end() }
                await Self.run(
                    backend, prompt: prompt, maxTokens: maxTokens, into: output,
                    ending: Ending(wasCancelled: cancellation.remove, idExpired: { streams.isExpired(key) }, handlerStopped: { streams.isStopped }))
            }
            let refusal: ConduitError? = switch started {
            case .started: nil
            case .running: .badRequest("a stream with token '\(correlation.value)' is already running for this client")
            case .full: .unavailable("the host has \(options.maxStreams) AI streams running (the ai option maxStreams)")
            case .stopped: .unavailable("the AI route's handler stopped (a reload or the shutdown); generate again")
            }
            if let refusal {
                cancellation.remove()
                end()
                responder.fail(refusal)
            }
        }
    }

    /// What a stream asks when its generator is done, before its last message.
    private struct Ending {
        /// Takes the stream out of the cancellable requests; whether a cancel came first.
        let wasCancelled: @Sendable () -> Bool
        let idExpired: @Sendable () -> Bool
        let handlerStopped: @Sendable () -> Bool
    }

    /// Generates the answer into `output`, which ends it: complete, aborted, or failed.
    private static func run(_ backend: any TokenBackend, prompt: String, maxTokens: Int, into output: TokenPushes, ending: Ending) async {
        var output = output
        var failure: ConduitError?
        do {
            try await backend.generate(prompt: prompt, maxTokens: maxTokens) { await output.token($0) }
        } catch let error where !Task.isCancelled {
            failure = ConduitError(converting: error)
        } catch {}
        // Out of the cancellable requests before the last message: a cancel that came first was
        // answered `CancelledError`, so the stream ends aborted even when its generator had
        // made its last token; one after it is ignored (the stream was complete). Checked after
        // the last message, a cancel in between was answered beside `complete` without `aborted`.
        let cancelled = ending.wasCancelled()
        guard !ending.idExpired() else { return }
        // Refused, the last message is tried again while the id lives and the handler runs.
        let wanted = { !ending.idExpired() && !ending.handlerStopped() }
        if let refusal = output.refusal {
            await output.fail(refusal, while: wanted)
        } else if cancelled || Task.isCancelled {
            await output.finish(aborted: true, while: wanted)
        } else if let failure {
            await output.fail(failure, while: wanted)
        } else {
            await output.finish(aborted: false, while: wanted)
        }
    }

    private func abort(_ request: Request, responder: Responder) throws(ConduitError) {
        guard let token = request.headers["stream"] ?? request.headers["token"] else {
            throw .badRequest("'\(request.route)' needs the header 'stream' (or 'token') naming the stream")
        }
        let key = StreamRegistry.Key(client: request.client, token: ExactText(token))
        responder.respond { [streams] in
            guard await streams.abort(key) else {
                throw ConduitError.notFound("no stream '\(token)' is running for client '\(request.client)'")
            }
            return try .json(["aborted": true])
        }
    }

    private func maxTokens(of request: Request) throws(ConduitError) -> Int {
        guard let text = request.headers["maxTokens"] else { return options.maxTokens }
        guard let value = Int(text), (1...AIOptions.maxTokensLimit).contains(value) else {
            throw .badRequest("'maxTokens' must be an integer 1…\(AIOptions.maxTokensLimit), not '\(text)'")
        }
        return value
    }
}
