import ConduitWire
import Logging

extension ConduitError {
    /// Any error a request ended with, as the error its client gets: a `ConduitError` as it
    /// is, wire errors by their code, cancellation as `UnavailableError`. Anything else is a
    /// fault inside the host or a handler, whose text may name files, peers or secrets: it goes
    /// to the host's log under a random reference, and the client gets only that reference.
    public init(converting error: any Error) {
        switch error {
        case let error as ConduitError: self = error
        case let error as WireError where error.code == .payloadTooLarge: self = .payloadTooLarge(error.message)
        case let error as WireError: self = .badRequest(error.description)
        case is CancellationError: self = .unavailable("the request was cancelled")
        default:
            let reference = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            internalErrors.error("request failed", metadata: [
                "error.reference": "\(reference)", "error.type": "\(type(of: error))", "error": "\(error)",
            ])
            self = .internal("the request failed inside the host; its log has the details under reference \(reference)")
        }
    }
}

/// Where the text of internal errors goes instead of to clients.
private let internalErrors = Logger(label: "conduit.errors")
