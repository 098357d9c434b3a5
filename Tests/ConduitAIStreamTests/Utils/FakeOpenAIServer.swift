import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A tiny OpenAI-compatible server for tests, on 127.0.0.1 and an ephemeral port: every
/// `POST /v1/chat/completions` is answered with `reply` (server-sent events written in small
/// pieces, so lines and events arrive split), then the connection closes. It keeps the
/// request heads and bodies it received.
final class FakeOpenAIServer: Sendable {
    enum Reply: Sendable {
        /// 200 with one `delta.content` event per token (after a role-only event, with a
        /// comment line in between), a finish event, then `data: [DONE]`.
        case tokens([String])
        /// 200 with these tokens, then an event that is not JSON.
        case malformed(after: [String])
        /// This status with a short JSON error body.
        case status(HTTPResponseStatus)
        /// 200 with this many `data:` lines of 64 KiB and never the blank line that ends the event.
        case endlessEvent(lines: Int)
        /// 200 with these tokens, then the connection held open, the stream never finished.
        case holding([String])
    }

    struct Received: Sendable {
        let head: HTTPRequestHead
        let body: String
    }

    let port: Int
    private let channel: any Channel
    private let received: NIOLockedValueBox<[Received]>

    private init(port: Int, channel: any Channel, received: NIOLockedValueBox<[Received]>) {
        self.port = port
        self.channel = channel
        self.received = received
    }

    var requests: [Received] { received.withLockedValue { $0 } }

    /// Runs a server answering `reply` for the length of `body`.
    static func run<Result: Sendable>(
        _ reply: Reply, _ body: (FakeOpenAIServer) async throws -> Result
    ) async throws -> Result {
        let received = NIOLockedValueBox<[Received]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(CompletionsResponder(reply: reply, received: received))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let server = FakeOpenAIServer(port: channel.localAddress!.port!, channel: channel, received: received)
        do {
            let result = try await body(server)
            try await channel.close()
            return result
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// The event-stream body for `reply`.
    static func events(for reply: Reply) -> [String] {
        func content(_ token: String) -> String {
            let literal = String(decoding: try! JSONEncoder().encode(token), as: UTF8.self)
            return #"data: {"choices":[{"index":0,"delta":{"content":\#(literal)},"finish_reason":null}]}"# + "\n\n"
        }
        let role = #"data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"# + "\r\n\r\n"
        switch reply {
        case .tokens(let tokens):
            let finish = #"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n"
            return [role, ": keep-alive\n\n"] + tokens.map(content) + [finish, "data: [DONE]\n\n"]
        case .malformed(let tokens):
            return [role] + tokens.map(content) + ["data: {\"choices\": [oops\n\n"]
        case .status:
            return []
        case .endlessEvent(let lines):
            return Array(repeating: "data: " + String(repeating: "x", count: 64 * 1024) + "\n", count: lines)
        case .holding(let tokens):
            return [role] + tokens.map(content)
        }
    }
}

/// Answers each request once its body has arrived.
private final class CompletionsResponder: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let reply: FakeOpenAIServer.Reply
    private let received: NIOLockedValueBox<[FakeOpenAIServer.Received]>
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(reply: FakeOpenAIServer.Reply, received: NIOLockedValueBox<[FakeOpenAIServer.Received]>) {
        self.reply = reply
        self.received = received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            let request = FakeOpenAIServer.Received(head: head, body: String(buffer: body))
            received.withLockedValue { $0.append(request) }
            respond(context: context)
        }
    }

    private func respond(context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("Connection", "close")])
        if case .status(let status) = reply {
            headers.add(name: "Content-Type", value: "application/json")
            // Past 2 KiB, as a server's error page may be: the host's message lost all of it.
            let body = ByteBuffer(string: #"{"error":{"message":"model not found"}}"# + String(repeating: " ", count: 4096))
            headers.add(name: "Content-Length", value: "\(body.readableBytes)")
            context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        } else {
            headers.add(name: "Content-Type", value: "text/event-stream")
            context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            for event in FakeOpenAIServer.events(for: reply) {
                // Each event in two writes, split mid-line, flushed apart.
                let bytes = Array(event.utf8)
                for piece in [bytes[..<(bytes.count / 2)], bytes[(bytes.count / 2)...]] {
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: piece)))), promise: nil)
                }
            }
        }
        if case .holding = reply { return }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
