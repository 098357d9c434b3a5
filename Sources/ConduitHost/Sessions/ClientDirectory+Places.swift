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
        evicted?.tell(events)
        return result
    }

    /// Why a new id is refused: every id held is connected.
    func noPlaceReason(for client: ClientID) -> String {
        "the host holds \(settings.maxClients) client ids (limits.maxClients), all connected; '\(client)' is not one of them"
    }

    /// An id taken out of the table, with what is told once the lock is released.
    struct Forgotten {
        let client: ClientID
        let waiters: [@Sendable () -> Void]

        func tell(_ events: @Sendable (ClientEvent) -> Void) {
            for waiter in waiters { waiter() }
            events(.expired(client))
        }
    }

    /// Takes an id out of the table: its buffered pushes are dropped (counted, bytes
    /// released) and its resume state ends.
    private func remove(_ client: ClientID, in slots: inout [ClientID: Slot]) -> Forgotten? {
        guard var slot = slots.removeValue(forKey: client) else { return nil }
        slot.expiry?.cancel()
        // Handovers still held go with the buffer (their bytes are reserved too).
        for handOver in slot.replaced { handOver.unsent?.forEach { slot.buffer.takeOver($0) } }
        slot.buffer.discardAll(.expired)
        slot.resume?.end()
        awayOrder.withLockedValue { $0.left(client) }
        return Forgotten(client: client, waiters: slot.waiters)
    }

    /// Ends the id's life one grace period from now, if it is still away then.
    func scheduleExpiry(_ client: ClientID) -> Scheduled<Void> {
        timers.scheduleTask(in: gracePeriod) { [self] in
            let forgotten = slots.withLockedValue { slots -> Forgotten? in
                guard let slot = slots[client], slot.isAway, slot.expiry != nil else { return nil }
                return remove(client, in: &slots)
            }
            forgotten?.tell(events)
        }
    }

    /// The id is away from now on, or named again while away: its grace period starts over,
    /// and it goes last among the ids that give their place to new ones.
    func startGrace(_ client: ClientID, in slot: inout Slot) {
        slot.expiry?.cancel()
        slot.expiry = isPaused ? nil : scheduleExpiry(client)
        awayOrder.withLockedValue { $0.wentAway(client) }
    }

    /// The id has a socket, a stream or a handshake again: it neither expires nor gives its place.
    func endGrace(_ client: ClientID, in slot: inout Slot) {
        slot.expiry?.cancel()
        slot.expiry = nil
        awayOrder.withLockedValue { $0.left(client) }
    }
}

/// What became of a new id when the host held `limits.maxClients` ids.
enum ClientPlace: String, CaseIterable, Sendable {
    /// The id away the longest was forgotten to make room.
    case evicted = "evicted-away"
    case refused
}
