/// Why a NATS operation failed.
public enum NATSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection is down (it comes back by itself); nothing was sent.
    case notConnected
    /// The connection went down while the request waited for its answer.
    case disconnected
    /// No subscriber listens on the request's subject (the server's 503 status).
    case noResponders(subject: String)
    case timedOut(subject: String)
    /// Headers and payload together exceed the server's `max_payload`.
    case payloadTooLarge(bytes: Int, limit: Int)
    case invalidSubject(String)
    case invalidHeader(String)
    case invalidURL(String)
    /// The server sent something this client can't read; the connection is closed.
    case protocolViolation(String)
    /// `-ERR` from the server.
    case server(String)
    case closed
    /// The request was cancelled by its caller.
    case cancelled
    /// The server reads slower than this client writes and the outbound buffer is full
    /// (`maxPendingBytes`); nothing was sent.
    case outboundFull(limit: Int)

    public var description: String {
        switch self {
        case .notConnected: "not connected to NATS"
        case .disconnected: "the NATS connection was lost before the answer came"
        case .noResponders(let subject): "no responders on '\(subject)'"
        case .timedOut(let subject): "no answer on '\(subject)' in time"
        case .payloadTooLarge(let bytes, let limit): "a \(bytes)-byte message exceeds the NATS server's max_payload of \(limit) bytes"
        case .invalidSubject(let subject) where subject.utf8.count > NATSClient.maxSubjectBytes:
            "'\(subject.prefix(64))…' (\(subject.utf8.count) bytes) is not a valid NATS subject: at most \(NATSClient.maxSubjectBytes) bytes"
        case .invalidSubject(let subject): "'\(subject)' is not a valid NATS subject"
        case .invalidHeader(let name): "header '\(name)' can't be sent to NATS (a name needs visible ASCII without ':', a value no line break)"
        case .invalidURL(let url): "'\(url)' is not a NATS URL (nats://[user:password@|token@]host[:port] or tls://…, one server: its cluster announces the others)"
        case .protocolViolation(let what): "NATS protocol violation: \(what)"
        case .server(let text): "NATS server error: \(text)"
        case .closed: "the NATS client is closed"
        case .cancelled: "the request was cancelled"
        case .outboundFull(let limit): "the NATS server is not keeping up: over \(limit) bytes wait to be sent"
        }
    }
}
