public import ConduitWire
import Foundation
public import NIOCore
import NIOConcurrencyHelpers
import NIOHTTP1
import NIOPosix

/// A host's IPC listener (SPEC §6) as typed calls: the seed's statics (`status`,
/// `diagnostics`, `waitForActiveState`, `getSharedKey`, `setSharedKey`), pause/resume, route
/// invocation, and the fallback event stream. Error answers are thrown as `ConduitReplyError`,
/// an unreachable listener as `ConduitClientError.ipcFailed`.
public final class IPCEndpoint: Sendable {
    public struct Status: Decodable, Sendable, Equatable {
        /// The socket server's port; nil while paused.
        public let port: Int?
        public let isActive: Bool
        public let sharedKey: String
    }

    public let host: String
    public let port: Int
    /// How long a call waits for its answer (`IPCClient.timeout`).
    public let timeout: Duration
    private let key: NIOLockedValueBox<String>
    private let group: any EventLoopGroup

    public init(
        host: String = "127.0.0.1", port: Int, sharedKey: String, timeout: Duration = .seconds(60),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.key = NIOLockedValueBox(sharedKey)
        self.group = group
    }

    /// The key this endpoint sends; `setSharedKey` updates it.
    public var sharedKey: String { key.withLockedValue { $0 } }

    public func status() async throws -> Status { try await control("status") }
    /// Pauses the socket server: every socket closes, pushes are buffered per id.
    @discardableResult public func stop() async throws -> Status { try await control("stop") }
    /// Resumes the socket server, on a new ephemeral port unless one is configured.
    @discardableResult public func start() async throws -> Status { try await control("start") }
    public func diagnostics() async throws -> Diagnostics { try await control("diagnostics") }

    public func getSharedKey() async throws -> String {
        struct Body: Decodable { let sharedKey: String }
        return try await (control("getSharedKey") as Body).sharedKey
    }

    /// Rotates the host's key (at least 8 bytes); open sockets stay, new handshakes and IPC
    /// calls need the new key, which this endpoint uses from now on.
    @discardableResult public func setSharedKey(_ newKey: String) async throws -> Status {
        // In the body, not the query: keys stay out of URLs.
        let body = try JSONEncoder().encode(["sharedKey": newKey])
        let status: Status = try await control("setSharedKey", body: ByteBuffer(bytes: body))
        key.withLockedValue { $0 = status.sharedKey }
        return status
    }

    /// Asks for the status up to `maxQueriesForStatus` times, `interval` apart, until the socket
    /// server is active; throws `ipcFailed` if it never is.
    public func waitForActiveState(maxQueriesForStatus: Int = 32, interval: Duration = .milliseconds(250)) async throws -> Status {
        for query in 0..<max(1, maxQueriesForStatus) {
            if query > 0 { try await Task.sleep(for: interval) }
            let status = try await status()
            if status.isActive { return status }
        }
        throw ConduitClientError(.ipcFailed, "the socket server is not active after \(maxQueriesForStatus) status queries")
    }

    /// Invokes `route` over IPC (`POST /<route>?<headers>`, body = payload) as client `id`
    /// and returns the reply (its payload joined); an error reply is thrown.
    public func invoke(route: String, headers: Headers = [:], payload: ByteBuffer = ByteBuffer(), id: String? = nil) async throws -> Message {
        let reply = try await reply(route: route, headers: headers, payload: payload, id: id)
        if let error = ConduitReplyError(reply: reply) { throw error }
        return reply
    }

    /// `invoke`, with an error reply returned as a message (as the socket would deliver it).
    func reply(route: String, headers: Headers, payload: ByteBuffer, id: String?) async throws -> Message {
        // The socket refuses these (SPEC §3): over IPC a request for `internal.conduit.stop` paused the host.
        guard !route.hasPrefix("internal.") else {
            throw ConduitClientError(.invalidMessage, "'\(route)' is a control route (IPCEndpoint's calls), not one a message reaches")
        }
        var query = headers
        query.removeAll(HeaderName.route)
        guard !query.contains(IPCQuery.reservedKey) else {
            throw ConduitClientError(.invalidMessage, "the header '\(IPCQuery.reservedKey)' can't travel over IPC (it is the shared key's query name)")
        }
        if let id { query.replaceOrAppend("id", id) }
        return Self.message(from: try await call(.POST, IPCQuery.target(route: route, headers: query), body: payload))
    }

    /// Reads `id`'s fallback stream until `receive` returns false or the host ends it (a
    /// socket for the id took over). Throws if the host refuses it (409: the id has a socket).
    public func events(for id: String, query: [(String, String)] = [], receive: (Message) async throws -> Bool) async throws {
        try await client.events(for: id, query: query, receive: receive)
    }

    /// As `events`, a frame that does not decode handed on as its error (`IPCClient.frames`).
    func frames(for id: String, query: [(String, String)] = [], receive: (Result<Message, WireError>) async throws -> Bool) async throws {
        try await client.frames(for: id, query: query, receive: receive)
    }

    private var client: IPCClient { IPCClient(host: host, port: port, key: sharedKey, timeout: timeout, group: group) }

    private func control<Answer: Decodable>(_ name: String, body: ByteBuffer? = nil) async throws -> Answer {
        let reply = Self.message(from: try await call(.POST, "/internal.conduit." + name, body: body))
        if let error = ConduitReplyError(reply: reply) { throw error }
        do {
            return try reply.decodeData(as: Answer.self)
        } catch {
            throw ConduitClientError(.ipcFailed, "unexpected answer to internal.conduit.\(name): \(String(buffer: reply.payload))")
        }
    }

    private func call(_ method: HTTPMethod, _ target: String, body: ByteBuffer? = nil) async throws -> IPCClient.Response {
        do {
            return try await client.request(method, target, body: body)
        } catch {
            throw ConduitClientError(.ipcFailed, "the IPC listener at \(host):\(port) does not answer: \(error)")
        }
    }

    /// A response as a reply message: its headers (not the HTTP framing ones) and body. A
    /// refusal without an `error` header (a missing or wrong key) gets one from its status.
    static func message(from response: IPCClient.Response) -> Message {
        var headers = Headers()
        for (name, value) in response.headers where !httpFraming.contains(name.lowercased()) {
            headers.append(name, value)
        }
        if response.status.code >= 300, headers[HeaderName.error] == nil {
            headers.append(HeaderName.error, "HTTP\(response.status.code)")
        }
        return Message(headers: headers, payload: response.body)
    }

    private static let httpFraming: Set<String> = ["content-length", "content-type", "connection", "transfer-encoding"]
}
