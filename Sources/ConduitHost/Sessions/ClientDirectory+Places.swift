import ConduitKit
import NIOConcurrencyHelpers
import NIOCore

/// Places in the table: an id costs about 1 KiB for as long as it is held, whatever made
/// it (a socket, a stream, an IPC invocation, a push), and one client with the key opened and
/// closed 3,900 sockets a second under new ids, each held for the grace period. So the table
/// holds at most `limits.maxClients` ids. A new id past it takes the place of the id away the
/// longest, which ends as at the end of its grace period (its buffered pushes dropped as
/// expired, handlers told); when no id is away, the new one is refused. Only a client's arrival
/// (a handshake, an IPC call naming its id) takes a place so: a push to an id the host does not
/// hold never ends one it does (a handler's farewell on `.expired` made the next id expire,
/// whose farewell made the next, without end).
extension ClientDirectory {
    /// Places taken from ids away, and refused, since the host started.
    struct PlaceCounts {
        var evicted = 0
        var refused = 0
    }

    /// The table's places as diagnostics show them.
    public struct Places: Sendable, Codable, Equatable {
        public let held: Int
        /// `limits.maxClients`.
        public let limit: Int
        /// New ids that took the place of the id away the longest.
        public let evicted: Int
        /// New ids refused: every id held was connected.
        public let refused: Int
    }

    public var places: Places {
        slots.withLockedValue { slots in
            let counts = placeCounts.withLockedValue { $0 }
            return Places(held: slots.count, limit: settings.maxClients, evicted: counts.evicted, refused: counts.refused)
        }
    }

    /// Runs `body` on the id's slot, which is made when the id is new and the table has a
    /// place for it; nil, and `body` is not run, when it has none. `evicting`: a new id may take
    /// the place of the id away the longest (a client arriving, not a push).
    func withPlacedSlot<Result>(_ client: ClientID, evicting: Bool = true, _ body: (inout Slot) -> Result) -> Result? {
        let (result, evicted): (Result?, Forgotten?) = slots.withLockedValue { slots in
            var evicted: Forgotten?
            // The count first: a push to a held id (nearly every call) then looks it up once.
            if slots.count >= settings.maxClients, slots[client] == nil {
                guard evicting, let oldest = awayOrder.withLockedValue({ $0.removeOldest() }) else {
                    placeCounts.withLockedValue { $0.refused += 1 }
                    budget.metrics.clientPlace(.refused)
                    return (nil, nil)
                }
                evicted = remove(oldest, in: &slots)
                placeCounts.withLockedValue { $0.evicted += 1 }
                budget.metrics.clientPlace(.evicted)
            }
            return (body(&slots[client, default: newSlot()]), evicted)
        }
        // Told only by what evicts (a client arriving): a push may come from a handler that
        // holds a lock its `clientEvent` takes, and would tell others' events too.
        if let evicted {
            evicted.callWaiters()
            events.tellWaiting()
        }
        return result
    }

    /// Why a new id is refused: every id held is connected.
    func noPlaceReason(for client: ClientID) -> String {
        "the host holds \(settings.maxClients) client ids (limits.maxClients), all connected; '\(client)' is not one of them"
    }

    /// An id taken out of the table (its `.expired` in line), with the callbacks waiting for
    /// room for it, called once the lock is released.
    struct Forgotten {
        let waiters: [@Sendable () -> Void]

        func callWaiters() {
            for waiter in waiters { waiter() }
        }
    }

    /// Takes an id out of the table: its buffered pushes are dropped (counted, bytes
    /// released) and its resume state ends.
    private func remove(_ client: ClientID, in slots: inout [ClientID: Slot]) -> Forgotten? {
        guard var slot = slots.removeValue(forKey: client) else { return nil }
        // Handovers still held go with the buffer (their bytes are reserved too).
        for handOver in slot.replaced {
            for entry in handOver.carried { slot.buffer.takeOver(entry) }
            handOver.unsent?.forEach { slot.buffer.takeOver($0) }
        }
        slot.buffer.discardAll(.expired)
        slot.resume?.end(counting: .expired)
        awayOrder.withLockedValue { $0.left(client) }
        events.enqueue(.expired(client))
        return Forgotten(waiters: slot.waiters)
    }

    /// The host is shutting down: every id's life ends as at the end of its grace period (its
    /// buffer dropped as expired, its window released, its waiters called, handlers told) and
    /// its fallback stream ends. Kept, an id's waiters held the connections of the handlers
    /// that wait (a TLS bridge's, a test handler's), which hold the directory: a cycle, and the
    /// stopped host stayed in memory with its routes, handlers and resume windows.
    func endEveryID() {
        let forgotten = slots.withLockedValue { slots in
            for slot in slots.values { slot.stream?.end() }
            return Array(slots.keys).compactMap { remove($0, in: &slots) }
        }
        for id in forgotten { id.callWaiters() }
        events.tellWaiting()
    }

    /// The id is away from now on, or named again while away: its grace period starts over,
    /// and it goes last among the ids that give their place to new ones. Under the table's lock.
    func startGrace(_ client: ClientID) {
        let expiresAt = isPaused ? nil : NIODeadline.now() + gracePeriod
        awayOrder.withLockedValue { $0.wentAway(client, expiresAt: expiresAt) }
        if let expiresAt { scheduleSweep(at: expiresAt) }
    }

    /// The id has a socket, a stream or a handshake again: it neither expires nor gives its place.
    func endGrace(_ client: ClientID) {
        awayOrder.withLockedValue { $0.left(client) }
    }

    /// One timer, set for the first id to expire, serves every id: they expire in the order
    /// they went away. (A timer each was cancelled by SwiftNIO searching all of its loop's
    /// timers: 50,000 ids coming back, or paused, held that loop for minutes.) Under the
    /// table's lock; `deadline` is never before one already set. The timer holds the directory
    /// weakly: held, a stopped host stayed in memory until the sweep came (a grace period at most).
    private func scheduleSweep(at deadline: NIODeadline) {
        let isSet = nextSweep.withLockedValue { next in
            guard next == nil else { return true }
            next = deadline
            return false
        }
        guard !isSet else { return }
        timers.scheduleTask(deadline: deadline) { [weak self] in self?.sweepExpired() }
    }

    /// Ends the lives of the ids whose grace period is over, then sets the timer for the next.
    private func sweepExpired() {
        let forgotten = slots.withLockedValue { slots -> [Forgotten] in
            nextSweep.withLockedValue { $0 = nil }
            guard !isPaused else { return [] }
            let expired = awayOrder.withLockedValue { $0.removeExpired(asOf: .now()) }
            let forgotten = expired.compactMap { client in slots[client]?.isAway == true ? remove(client, in: &slots) : nil }
            if let next = awayOrder.withLockedValue({ $0.nextExpiry() }) { scheduleSweep(at: next) }
            return forgotten
        }
        for id in forgotten { id.callWaiters() }
        events.tellWaiting()
    }
}

/// What became of a new id when the host held `limits.maxClients` ids.
enum ClientPlace: String, CaseIterable, Sendable {
    /// The id away the longest was forgotten to make room.
    case evicted = "evicted-away"
    case refused
}
