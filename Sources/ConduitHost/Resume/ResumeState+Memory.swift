import ConduitWire
import NIOCore

/// The window's memory, and its charge on the host's budget (SPEC §3).
extension ResumeState {
    /// The window takes the host's budget in steps of this many bytes: one update of the
    /// budget's shared counter (which every event loop updates) per step, not per message. An
    /// id holds at most two steps it does not use, and none once its window is empty.
    private static let budgetStep = 16 * 1024

    /// The memory the window takes: the storage of its log and of its lists, and what its
    /// messages hold apart from the log.
    static func memory(of state: State) -> Int {
        state.log.capacity + state.heldBytes + state.window.capacity * MemoryLayout<Sent>.stride
            + state.held.capacity * MemoryLayout<Message>.stride + state.heldPayloads.capacity * MemoryLayout<ByteBuffer>.stride
            + state.processedAboveMemory
    }

    /// A set of positions' storage: a bucket of 8 bytes and a bit for each place and a third
    /// more (a set fills at most three quarters of its buckets), and its header.
    static func memory(of positions: Set<UInt64>) -> Int {
        positions.capacity == 0 ? 0 : 64 + positions.capacity * 11
    }

    /// The window's memory once a message that puts `logged` bytes in the log and holds `held`
    /// bytes apart (in the list `kind` names) is kept.
    private static func memory(logging logged: Int, holding held: Int, as kind: Held, _ state: State) -> Int {
        let listGrowth =
            switch kind {
            case .nothing: 0
            case .message: growth(appendingTo: state.held)
            case .payload: growth(appendingTo: state.heldPayloads)
            }
        return memory(of: state) - state.log.capacity + state.log.capacity(appending: logged) + held
            + (state.window.isFull ? state.window.capacity * MemoryLayout<Sent>.stride : 0) + listGrowth
    }

    /// The bytes a list's storage grows by when one more element is appended: it doubles when it fills.
    private static func growth<Element>(appendingTo list: CircularBuffer<Element>) -> Int {
        list.count + 1 >= list.capacity ? list.capacity * MemoryLayout<Element>.stride : 0
    }

    /// Makes room for a message of `bytes` encoded bytes, `logged` of them for the log and
    /// `held` bytes of memory kept apart, that starts at position `first`: past the bound (its
    /// own, of encoded bytes, or the memory the host's budget gives) the oldest messages go,
    /// whole (every part of one still held), counted as evicted (a client that had not received
    /// them is told on its next connect). The newest message is kept whole even alone over the
    /// window's bound (SPEC §9) when the budget covers it. Returns the window's memory with the
    /// message kept, charged; nil when the budget can't cover it even alone: it is not kept.
    func makeRoom(_ bytes: UInt32, logging logged: UInt32, holding held: UInt32, as kind: Held, keepingFrom first: UInt64, in state: inout State) -> Int? {
        while true {
            let memory = Self.memory(logging: Int(logged), holding: Int(held), as: kind, state)
            if state.windowBytes + Int(bytes) <= windowLimit, charge(memory, in: &state) {
                state.memoryIsCharged = true
                return memory
            }
            guard !state.window.isEmpty, state.firstPosition < first else {
                guard charge(memory, in: &state) else { return nil }
                state.memoryIsCharged = true
                return memory
            }
            var count = 1
            while !state.window[count - 1].endsMessage, count < state.window.count { count += 1 }
            releaseOldest(count, in: &state)
            state.counters.add(.evicted, count, metrics: budget.metrics)
        }
    }

    /// Makes the window's charge on the host's budget cover `memory`, topped up by a step, or by
    /// just what is missing when a step no longer fits; false when not even that does.
    private func charge(_ memory: Int, in state: inout State) -> Bool {
        guard memory > state.charged else { return true }
        guard !state.ended else { return false }
        let missing = memory - state.charged
        let step = max(missing, Self.budgetStep)
        if budget.reserve(step) {
            state.charged += step
        } else if step > missing, budget.reserve(missing) {
            state.charged += missing
        } else {
            return false
        }
        return true
    }

    /// Brings the charge to the window's memory: the budget is asked for what is missing (a
    /// newest message over the bound is kept without it), and given back what is more than two
    /// steps above it, all of it once the window is empty.
    func settle(_ state: inout State) {
        let memory = Self.memory(of: state)
        state.memoryIsCharged = charge(memory, in: &state)
        guard state.memoryIsCharged else { return }
        let ahead = state.window.isEmpty ? 0 : Self.budgetStep
        guard state.charged > memory + 2 * ahead else { return }
        budget.release(state.charged - memory - ahead)
        state.charged = memory + ahead
    }

    /// `settle` after a message is kept: nothing to do when `makeRoom` charged the memory it
    /// foresaw (computing the memory again was a percent of the routed echo's CPU). The tests
    /// check the foresight on every message (it missed the growth of the held lists once).
    func settle(_ state: inout State, foreseen memory: Int?) {
        guard let memory else { return settle(&state) }
        assert(memory == Self.memory(of: state), "the window's memory was foreseen \(memory), is \(Self.memory(of: state))")
    }
}
