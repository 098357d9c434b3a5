import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

/// A WebSocket client driving `tls.*`: sends requests with tokens, and sorts what comes back
/// into replies (by token) and the stream's pushes (`tls.data` bytes, `tls.end`), which may
/// arrive before, between or after replies.
final class TLSSession {
    let client: TestWebSocketClient
    private(set) var received: [UInt8] = []
    private(set) var end: Message?
    private var replies: [String: Message] = [:]
    private var lastToken = 0
    /// Where the handler is mounted (`tls` for `tls.*`): its pushes are `<mount>.data` and `.end`.
    let mount: String

    init(_ client: TestWebSocketClient, mount: String = "tls") {
        self.client = client
        self.mount = mount
    }

    /// Sends a request (split into parts when over one message) and returns its token.
    @discardableResult
    func send(_ route: String, _ headers: Headers = [:], payload: [UInt8] = []) async throws -> String {
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
    func request(_ route: String, _ headers: Headers = [:], payload: [UInt8] = []) async throws -> Message {
        try await reply(to: try await send(route, headers, payload: payload))
    }

    func reply(to token: String) async throws -> Message {
        try await read { $0.replies[token] != nil }
        return replies.removeValue(forKey: token)!
    }

    /// Reads messages until `condition` holds.
    func read(until condition: (TLSSession) -> Bool) async throws {
        while !condition(self) {
            let message = try await client.nextJoinedMessage()
            switch message.headers["route"] {
            case "\(mount).data": received += Array(message.payload.readableBytesView)
            case "\(mount).end": end = message
            default: replies[message.headers["token"] ?? ""] = message
            }
        }
    }

    func hasReplies(to tokens: some Sequence<String>) -> Bool {
        tokens.allSatisfy { replies[$0] != nil }
    }
}

private struct DataEnvelope<Value: Decodable>: Decodable { let data: Value }
private struct ErrorEnvelope: Decodable {
    struct Err: Decodable { let type: String; let message: String }
    let err: Err
}

extension Message {
    /// The `{"data": …}` of a successful reply; records an issue with the error otherwise.
    func data<Value: Decodable>(_ type: Value.Type) throws -> Value {
        #expect(headers["error"] == nil, "\(String(buffer: payload))")
        return try JSONDecoder().decode(DataEnvelope<Value>.self, from: Data(payload.readableBytesView)).data
    }

    /// The error type and message of an error reply (nil when it is not one).
    var failure: (type: String, message: String)? {
        guard let type = headers["error"],
              let envelope = try? JSONDecoder().decode(ErrorEnvelope.self, from: Data(payload.readableBytesView))
        else { return nil }
        #expect(envelope.err.type == type)
        return (type, envelope.err.message)
    }
}

/// `tls.echoService`'s answer.
struct EchoServiceInfo: Decodable {
    let host: String
    let port: Int
    let certificatePEM: String
    let connections: Int
}

/// `tls.connect`'s answer.
struct ConnectSummary: Decodable {
    let host: String
    let port: Int
    let servername: String?
    let verified: Bool
}
