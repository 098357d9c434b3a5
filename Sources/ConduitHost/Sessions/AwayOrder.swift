import ConduitKit
import NIOCore

/// The ids that are away (no socket, stream or handshake), in the order they went away: when
/// the host holds `limits.maxClients` ids, the one away the longest gives its place to a new id,
/// and as every grace period is as long, they expire in that order too.
/// An id that comes back, or goes away again, leaves its old entry behind, stale; stale entries
/// are skipped when met and swept out once they outnumber the ids away, so the order holds at
/// most about twice as many entries as there are ids away.
struct AwayOrder {
    private struct Entry {
        let client: ClientID
        let ticket: UInt64
        /// The end of its grace period; nil while the host is paused (ids don't expire).
        let expiresAt: NIODeadline?
    }

    private var entries = CircularBuffer<Entry>()
    /// The ticket of each id away: its entry is the one with this ticket.
    private var tickets: [ClientID: UInt64] = [:]
    private var lastTicket: UInt64 = 0

    /// Entries kept, stale ones included: at most about twice the ids away.
    var storedEntries: Int { entries.count }

    /// Whether `client` is among the ids away.
    func holds(_ client: ClientID) -> Bool { tickets[client] != nil }

    /// `client` went away, or was named again while away: it goes last, to expire at `expiresAt`
    /// (one grace period from now: later than every entry before it).
    mutating func wentAway(_ client: ClientID, expiresAt: NIODeadline?) {
        lastTicket += 1
        tickets[client] = lastTicket
        entries.append(Entry(client: client, ticket: lastTicket, expiresAt: expiresAt))
        // Each sweep follows at least as many appends as it reads entries.
        if entries.count > 2 * tickets.count + 1024 { entries = CircularBuffer(entries.filter(isCurrent)) }
    }

    /// `client` has a socket, a stream or a handshake again, or is forgotten.
    mutating func left(_ client: ClientID) {
        tickets[client] = nil
    }

    /// Takes out the id away the longest.
    mutating func removeOldest() -> ClientID? {
        while let entry = entries.popFirst() {
            guard isCurrent(entry) else { continue }
            tickets[entry.client] = nil
            return entry.client
        }
        return nil
    }

    /// Takes out the ids whose grace period ended by `now`, the oldest first.
    mutating func removeExpired(asOf now: NIODeadline) -> [ClientID] {
        var expired: [ClientID] = []
        while let entry = entries.first {
            if isCurrent(entry) {
                guard let expiresAt = entry.expiresAt, expiresAt <= now else { break }
                tickets[entry.client] = nil
                expired.append(entry.client)
            }
            entries.removeFirst()
        }
        return expired
    }

    /// When the id away the longest expires (nil: none away, or the host paused).
    mutating func nextExpiry() -> NIODeadline? {
        while let entry = entries.first, !isCurrent(entry) { entries.removeFirst() }
        return entries.first?.expiresAt
    }

    private func isCurrent(_ entry: Entry) -> Bool {
        tickets[entry.client] == entry.ticket
    }
}
