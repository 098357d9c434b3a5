import ConduitKit

/// What bounds a transport puts on requests answered from a task (`Responder.respond`).
struct RequestLimits: Sendable {
    /// Per connection (per request over IPC, where they come one at a time).
    let inFlight: InFlightLimit?
    let timeout: Duration
}

extension InFlightLimit {
    /// An IPC request's: its connection runs one at a time, but what it starts may outlive
    /// it (an AI stream keeps its prompt), so it too holds its bytes of the budget while it runs.
    static func ipcRequest(budget: BufferBudget) -> InFlightLimit {
        InFlightLimit(limit: 1, budget: budget.forRequestsInFlight)
    }
}
