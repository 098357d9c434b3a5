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
    public init(_ headers: NATSHeaders) {
        self.init(headers.map { ($0.name, $0.value) })
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
