import ConduitKit
import NIOConcurrencyHelpers
import NIOCore

/// Congestion: when an id's queue is too full for more, and waking its sources once it drains.
extension ClientDirectory {
    /// Congested: over the high-water mark in bytes, or over half the byte or message bound
    /// of the id's queue (a stream of small messages meets the latter first; so does a queue
    /// configured smaller than the mark, whose reliable pushes were refused before a stream
    /// was ever told to pause).
    public func isCongested(_ client: ClientID) -> Bool {
        slots.withLockedValue { slots in
            guard let slot = slots[client] else { return false }
            return slot.queuedBytes > min(settings.congestionHighWaterBytes, byteBound(slot) / 2) || slot.queuedMessages > messageBound(slot) / 2
        }
    }

    public func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) {
        let (now, early): (Bool, (@Sendable () -> Void)?) = slots.withLockedValue { slots in
            guard slots[client] != nil, !isUnderLowWater(slots[client]!) else { return (true, nil) }
            slots[client]!.waiters.append(body)
            guard slots[client]!.waiters.count > Self.maxWaitersPerID else { return (false, nil) }
            return (false, slots[client]!.waiters.removeFirst())
        }
        if now { body() }
        if let early { timers.scheduleTask(in: Self.earlyCallDelay) { early() } }
    }

    /// Callbacks one id keeps at most; past it the oldest is called early (it finds the id
    /// still congested and waits again). Those of sources that ended meanwhile (a TLS
    /// connection closed while paused, an AI stream past its timeout) stayed, each holding what
    /// it captured, until the id drained or expired: a client that never read grew the list
    /// without end.
    static let maxWaitersPerID = 64
    /// How much later than its eviction the oldest callback is called: called at once, it
    /// waited again at once and evicted the next, a spin (413,899 calls in 2 s with 65 waiting).
    static let earlyCallDelay = TimeAmount.milliseconds(50)

    private func isUnderLowWater(_ slot: Slot) -> Bool {
        slot.queuedBytes <= min(settings.congestionLowWaterBytes, byteBound(slot) / 4) && slot.queuedMessages <= messageBound(slot) / 4
    }

    private func messageBound(_ slot: Slot) -> Int {
        slot.session == nil ? settings.pushBufferMessages : settings.outboundQueueMessages
    }

    private func byteBound(_ slot: Slot) -> Int {
        slot.session == nil ? settings.pushBufferBytes : settings.outboundQueueBytes
    }

    /// The id's queue shrank (its socket wrote, a stream took a push, a buffer was handed to
    /// the socket): wakes the waiters once it is under the low-water mark.
    func queueShrank(for client: ClientID) {
        let waiters = slots.withLockedValue { takeWaitersIfWritable(client, in: &$0) }
        for waiter in waiters { waiter() }
    }

    func takeWaitersIfWritable(_ client: ClientID, in slots: inout [ClientID: Slot]) -> [@Sendable () -> Void] {
        guard let slot = slots[client], !slot.waiters.isEmpty, isUnderLowWater(slot) else { return [] }
        slots[client]!.waiters = []
        return slot.waiters
    }
}
