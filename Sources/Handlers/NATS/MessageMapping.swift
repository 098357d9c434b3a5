public import ConduitKit
public import ConduitNATS
public import ConduitWire

/// Conduit headers and NATS headers are the same pairs (SPEC §10); these move them across.
extension NATSHeaders {
    public init(_ headers: Headers) {
        self.init()
        for (name, value) in headers { append(name, value) }
    }
}

extension Headers {
    /// A NATS message is whole, so `more` (the framing's mark of a part, SPEC §1) is not taken
    /// from it: a client held such a push or reply as a part and joined it to the next message.
    public init(_ headers: NATSHeaders) {
        self.init(headers.filter { $0.name != HeaderName.more }.map { ($0.name, $0.value) })
    }
}

extension ConduitError {
    /// What a client is answered when NATS could not carry its request.
    public init(_ error: NATSError) {
        switch error {
        case .payloadTooLarge: self = .payloadTooLarge(error.description)
        case .invalidHeader, .invalidSubject: self = .badRequest(error.description)
        case .timedOut: self = .unavailable("no NATS worker answered in time (\(error.description))")
        case .cancelled: self = .cancelled(error.description)
        default: self = .unavailable(error.description)
        }
    }
}
