import ConduitKit

/// What bounds a transport puts on requests answered from a task (`Responder.respond`).
struct RequestLimits: Sendable {
    /// Per connection; nil where requests come one at a time (IPC).
    let inFlight: InFlightLimit?
    let timeout: Duration
}
