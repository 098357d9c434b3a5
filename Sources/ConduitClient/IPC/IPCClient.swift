public import ConduitWire
public import NIOCore
public import NIOHTTP1
import NIOConcurrencyHelpers
import NIOPosix

/// A small client of a host's IPC listener (SPEC §6): one request per connection, the key
/// as a bearer token. Used by `IPCEndpoint`, the `conduit status|pause|resume` commands and
/// tests.
public struct IPCClient: Sendable {
    public struct Response: Sendable {
        public let status: HTTPResponseStatus
        public let headers: HTTPHeaders
        public let body: ByteBuffer
    }

    public let host: String
    public let port: Int
    /// nil: send no key (to see the refusal).
    public let key: String?
    /// How long a call may wait for its answer, connecting included: a request for the whole
    /// response, an events stream for its head (the stream itself lasts). Past it the
    /// connection is closed and the call throws: a listener that takes the connection and
    /// never answers can't hang the caller.
    public let timeout: Duration
    private let group: any EventLoopGroup

    public init(
        host: String = "127.0.0.1", port: Int, key: String?, timeout: Duration = .seconds(60),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.key = key
        self.timeout = timeout
        self.group = group
    }

    /// The most a response may bring: a reply carries one message (`WireLimits.maxEncodedBytes`),
    /// the diagnostics of every id a few megabytes. Whatever answers on the port (another
    /// program, after the host went) can't make the client buffer more.
    public static let maxResponseBytes = 64 << 20
    /// The most of a refused events stream's body kept for its error (a host's is a line).
    static let maxRefusalBytes = 64 << 10

    /// Sends `method target` (`/<route>?<query>`) with `body` and returns the whole response.
    public func request(_ method: HTTPMethod = .GET, _ target: String, body: ByteBuffer? = nil) async throws -> Response {
        var head: HTTPResponseHead?
        var collected = ByteBuffer()
        try await exchange(method, target, body: body, answeredBy: .end) { part in
            switch part {
            case .head(let received): head = received
            case .body(var bytes):
                guard collected.readableBytes + bytes.readableBytes <= Self.maxResponseBytes else {
                    throw IPCClientError(status: head?.status, message: "the response from \(host):\(port) passes \(Self.maxResponseBytes) bytes")
                }
                collected.writeBuffer(&bytes)
            case .end: return false
            }
            return true
        }
        guard let head else { throw IPCClientError(status: nil, message: "the connection closed before a response") }
        return Response(status: head.status, headers: head.headers, body: collected)
    }

    /// Reads `client`'s fallback stream (`/internal.conduit.events?id=`), handing each message
    /// to `receive` until it returns false or the host ends the stream. Throws if the host
    /// refuses the stream (the error carries the status and body). `query`: more parameters
    /// (`resume`, `epoch`: SPEC §9).
    public func events(for client: String, query: [(String, String)] = [], receive: (Message) async throws -> Bool) async throws {
        try await frames(for: client, query: query) { try await receive($0.get()) }
    }

    /// As `events`, except that a frame that does not decode is handed on as its error and
    /// the stream read on: thrown, it ended the stream, and the next one, asked for from the
    /// same position, brought it again, every two seconds for ever.
    func frames(for client: String, query: [(String, String)] = [], receive: (Result<Message, WireError>) async throws -> Bool) async throws {
        var pending = ByteBuffer()
        var refusal: HTTPResponseStatus?
        let target = "/internal.conduit.events?" + IPCQuery.encode([("id", client)] + query)
        try await exchange(.GET, target, body: nil, answeredBy: .head) { part in
            switch part {
            case .head(let head) where head.status != .ok:
                refusal = head.status
            case .head:
                break
            case .body(var bytes) where refusal != nil:
                // A refusal's body is its error's text: past a line's worth, the rest is not read.
                pending.writeBuffer(&bytes)
                return pending.readableBytes < Self.maxRefusalBytes
            case .body(var bytes):
                pending.writeBuffer(&bytes)
                while let frame = try Self.nextFrame(from: &pending) {
                    guard try await receive(frame) else { return false }
                }
                pending.discardReadBytes()
            case .end:
                return false
            }
            return true
        }
        if let refusal { throw IPCClientError(status: refusal, message: "\(refusal.code) \(String(buffer: pending))") }
    }

    /// One framed message (uint32 BE length, encoded message) off the front of `buffer`, or
    /// why its bytes do not decode. The message holds a copy of its own bytes: as a view of
    /// `buffer`'s, each one kept a whole chunk's storage alive (a 30-byte message held in
    /// `events()`, bounded by its size, kept 64 KiB), and the storage was copied whole for
    /// every message read.
    static func nextFrame(from buffer: inout ByteBuffer) throws(IPCClientError) -> Result<Message, WireError>? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        // A length no message has (a broken stream) is an error, not 4 GB to wait for.
        guard length <= WireLimits.maxEncodedBytes else {
            throw IPCClientError(status: nil, message: "the events stream announced a message of \(length) bytes; none is over \(WireLimits.maxEncodedBytes)")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        let frame = ByteBuffer(bytes: buffer.readableBytesView.dropFirst(4).prefix(Int(length)))
        buffer.moveReaderIndex(forwardBy: 4 + Int(length))
        return Result { () throws(WireError) in try Message(decoding: frame) }
    }

    /// The part of a response that ends the wait `timeout` bounds.
    private enum Answer {
        case head
        case end
    }

    /// Sends one request and hands the response parts to `onPart` until it returns false;
    /// throws when `answer` has not come within `timeout`.
    private func exchange(
        _ method: HTTPMethod, _ target: String, body: ByteBuffer?, answeredBy answer: Answer,
        onPart: (HTTPClientResponsePart) async throws -> Bool
    ) async throws {
        let started = ContinuousClock.now
        let bootstrap = ClientBootstrap(group: group).connectTimeout(TimeAmount(timeout))
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await bootstrap.connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        } catch ChannelError.connectTimeout {
            throw noAnswer
        }
        var headers: HTTPHeaders = ["host": "\(host):\(port)", "content-length": "\(body?.readableBytes ?? 0)"]
        if let key { headers.add(name: "authorization", value: "Bearer \(key)") }
        // Set by the deadline's task itself: a cancel that comes as the task runs still
        // fails its future, so the future can't say whether it fired.
        let fired = NIOLockedValueBox(false)
        let deadline = channel.channel.eventLoop.scheduleTask(in: TimeAmount(timeout - (ContinuousClock.now - started))) { [channel = channel.channel] in
            fired.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
        var failure: (any Error)?
        var answered = false
        do {
            try await exchange(on: channel, method, target, headers: headers, body: body) { part in
                switch (part, answer) {
                case (.head, .head), (.end, .end):
                    answered = true
                    deadline.cancel()
                default: break
                }
                return try await onPart(part)
            }
        } catch {
            failure = error
        }
        deadline.cancel()
        if !answered, fired.withLockedValue({ $0 }) { throw noAnswer }
        if let failure { throw failure }
    }

    /// What a call that timed out throws, whether connecting or waiting for the answer.
    private var noAnswer: IPCClientError {
        IPCClientError(status: nil, message: "no answer from \(host):\(port) within \(timeout)")
    }

    private func exchange(
        on channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>, _ method: HTTPMethod, _ target: String,
        headers: HTTPHeaders, body: ByteBuffer?, onPart: (HTTPClientResponsePart) async throws -> Bool
    ) async throws {
        try await channel.executeThenClose { inbound, outbound in
            // A host may answer and close before the whole request is written (a missing or
            // wrong key is answered on the head alone): then its answer counts, not the write.
            var unwritten: (any Error)?
            do {
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)))
                if let body { try await outbound.write(.body(.byteBuffer(body))) }
                try await outbound.write(.end(nil))
            } catch {
                unwritten = error
            }
            var answered = false
            for try await part in inbound {
                answered = true
                guard try await onPart(part) else { return }
            }
            if !answered, let unwritten { throw unwritten }
        }
    }
}

public struct IPCClientError: Error, CustomStringConvertible {
    /// The refusal's status; nil when there was no response.
    public let status: HTTPResponseStatus?
    public let message: String
    public var description: String { message }
}
