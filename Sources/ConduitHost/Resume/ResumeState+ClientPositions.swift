import Synchronization

/// Client → host: positions checked and recorded, so each client message is dispatched once.
extension ResumeState {
    enum ClientPosition {
        /// Processed already: the message is dropped (counted).
        case duplicate
        case admitted
        /// Too many positions wait above an open chunked request (4,096, or what the budget can
        /// cover): the connection is closed, the message not dispatched nor its position recorded.
        case tooManyAbove
        /// From a socket another replaced (it is closing), or whose state ended (a plain
        /// connection took the id, closing it too; an ended state has no writer): neither
        /// dispatched nor recorded. Its client sends it again on the new one, above that one's
        /// greeting's `ack`; admitted, after a reset a position of the old epoch counted in the
        /// new one, and the new client's own messages with those positions were dropped as
        /// duplicates.
        case superseded
    }

    /// Checks a client position and, unless it is a duplicate, records it, in one step.
    /// `isChunk`: a chunk of a request still open, not processed until the request is (its
    /// position is not recorded; the caller holds it as `openFrom`). `openFrom`: the first
    /// position of the chunked request open on the connection; the acknowledgement stays
    /// below it (positions increase, so everything processed meanwhile is above it).
    /// `ack`: the host positions the message acknowledges, applied under the same lock.
    func admit(_ position: UInt64, isChunk: Bool, openFrom: UInt64?, acknowledging ack: UInt64? = nil, from writer: ObjectIdentifier?) -> ClientPosition {
        state.withLock { state in
            guard state.writer == writer else { return .superseded }
            if let ack { acknowledge(ack, in: &state) }
            // Nearly always: a whole request, no chunked one open anywhere for the id.
            if !isChunk, openFrom == nil, state.processedAbove.isEmpty {
                guard position > state.clientAck else { return duplicate(in: &state) }
                state.clientAck = position
                return .admitted
            }
            guard position > state.clientAck, !state.processedAbove.contains(position) else {
                return duplicate(in: &state)
            }
            if isChunk { return .admitted }
            guard openFrom != nil else {
                state.clientAck = max(position, state.processedAbove.max() ?? 0)
                if !state.processedAbove.isEmpty { notePositions(in: &state) { $0.removeAll() } }
                return .admitted
            }
            // Refused, the position is not recorded: the message is not dispatched, and its
            // client sends it again after reconnecting.
            guard state.processedAbove.count < Self.maxProcessedAbove else { return .tooManyAbove }
            guard notePositions(in: &state, { $0.insert(position) }) else {
                notePositions(in: &state) { $0.remove(position) }
                return .tooManyAbove
            }
            return .admitted
        }
    }

    /// Changes the positions above the acknowledgement; when their storage changes size, the
    /// window's charge follows. False when the budget can't cover it.
    @discardableResult
    private func notePositions(in state: inout State, _ change: (inout Set<UInt64>) -> Void) -> Bool {
        change(&state.processedAbove)
        let memory = Self.memory(of: state.processedAbove)
        guard memory != state.processedAboveMemory else { return true }
        state.processedAboveMemory = memory
        settle(&state)
        return state.memoryIsCharged
    }

    private func duplicate(in state: inout State) -> ClientPosition {
        state.counters.add(.duplicate, 1, metrics: budget.metrics)
        return .duplicate
    }

    /// The last client position the host acknowledges.
    var clientAck: UInt64 { state.withLock { $0.clientAck } }
}
