/// The bytes one holder (a connection's chunk queue, its unfinished inbound message) has taken
/// from the host's budget, kept equal to what it holds.
struct BudgetReservation {
    private(set) var bytes = 0

    /// Takes from the budget, or gives back, the difference to `wanted`; false, and nothing
    /// more taken, when the budget can't cover it. `share`: the part of the budget it may fill (incoming messages: half).
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

    /// The bytes held, handed to the caller to release (once what holds them is written),
    /// none left held here.
    mutating func handOver() -> Int {
        defer { bytes = 0 }
        return bytes
    }

    mutating func releaseAll(in budget: BufferBudget) {
        budget.release(bytes)
        bytes = 0
    }
}
