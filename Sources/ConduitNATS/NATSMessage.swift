public import NIOCore

/// A message received from NATS (MSG or HMSG).
public struct NATSMessage: Sendable {
    public var subject: String
    /// Where an answer goes: set on requests.
    public var replyTo: String?
    public var headers: NATSHeaders
    public var payload: ByteBuffer
    /// The header block's status (`503` when a request found no responders), nil when none.
    public var status: Int?
    public var statusDescription: String?

    public init(subject: String, replyTo: String? = nil, headers: NATSHeaders = [:], payload: ByteBuffer,
                status: Int? = nil, statusDescription: String? = nil) {
        self.subject = subject
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
        self.status = status
        self.statusDescription = statusDescription
    }
}
