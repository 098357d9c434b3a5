import NIOCore

/// The bytes one holder (a connection's chunk queue or unfinished inbound message, an IPC
/// request's body or joined reply) has taken from the host's budget, kept equal to what it holds.
struct BudgetReservation {
    private(set) var bytes = 0

    /// Takes from the budget, or gives back, the difference to `wanted`; false, and nothing
    /// more taken, when the budget can't cover it. `share`: the part of the budget it may fill
    /// (incoming messages: half).
    mutating func match(_ wanted: Int, in budget: BufferBudget, share: BufferBudget.Share = .half) -> Bool {
        // The common case, first: nothing held, nothing taken.
        if wanted == bytes { return true }
        if wanted < bytes {
            budget.release(bytes - wanted)
            bytes = wanted
            return true
        }
        guard budget.reserve(wanted - bytes, share: share) else { return false }
        bytes = wanted
        return true
    }

    /// Gives the bytes held back once `written` completes (what holds them is on its way to
    /// the socket), and holds none from now on: the next holder starts afresh.
    mutating func release(in budget: BufferBudget, when written: EventLoopFuture<Void>) {
        let held = bytes
        bytes = 0
        written.whenComplete { _ in budget.release(held) }
    }

    mutating func releaseAll(in budget: BufferBudget) {
        budget.release(bytes)
        bytes = 0
    }
}
