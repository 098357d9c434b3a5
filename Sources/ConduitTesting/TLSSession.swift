public import ConduitWire
import NIOCore

/// A WebSocket client driving a `tls` handler's routes: sends requests with tokens, and sorts
/// what comes back into replies (by token) and the stream's pushes (`<mount>.data` bytes,
/// `<mount>.end`), which may arrive before, between or after replies.
public final class TLSSession {
    public let client: TestWebSocketClient
    public private(set) var received: [UInt8] = []
    public private(set) var end: Message?
    /// The largest `data` push, its parts joined (a push should need none: at most 65,535 bytes).
    public private(set) var largestData = 0
    private var replies: [String: Message] = [:]
    private var lastToken = 0
    /// Where the handler is mounted (`tls` for `tls.*`): its pushes are `<mount>.data` and `.end`.
    public let mount: String

    public init(_ client: TestWebSocketClient, mount: String = "tls") {
        self.client = client
        self.mount = mount
    }

    /// Sends a request (split into parts when over one message) and returns its token.
    @discardableResult
    public func send(_ route: String, _ headers: Headers = [:], payload: [UInt8] = []) async throws -> String {
        lastToken += 1
        let token = "\(lastToken)"
        var all: Headers = ["route": route, "token": token]
        for (name, value) in headers { all.append(name, value) }
        for part in Message(headers: all, payload: payload).split() {
            try await client.send(part)
        }
        return token
    }

    /// Sends a request and waits for its reply.
    public func request(_ route: String, _ headers: Headers = [:], payload: [UInt8] = []) async throws -> Message {
        try await reply(to: try await send(route, headers, payload: payload))
    }

    public func reply(to token: String) async throws -> Message {
        try await read { $0.replies[token] != nil }
        return replies.removeValue(forKey: token)!
    }

    /// Reads messages until `condition` holds.
    public func read(until condition: (TLSSession) -> Bool) async throws {
        while !condition(self) {
            let message = try await client.nextJoinedMessage()
            switch message.headers["route"] {
            case "\(mount).data":
                received += Array(message.payload.readableBytesView)
                largestData = max(largestData, message.payload.readableBytes)
            case "\(mount).end": end = message
            default: replies[message.headers["token"] ?? ""] = message
            }
        }
    }

    public func hasReplies(to tokens: some Sequence<String>) -> Bool {
        tokens.allSatisfy { replies[$0] != nil }
    }
}
