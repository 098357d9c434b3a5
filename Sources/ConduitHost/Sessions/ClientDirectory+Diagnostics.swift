import ConduitKit
import NIOConcurrencyHelpers
import Synchronization

/// The ids and their buffers as diagnostics show them.
extension ClientDirectory {
    /// The ids with an open socket (or one whose 101 is on the way), in the order of their names.
    var connectedIDs: [String] {
        slots.withLockedValue { $0.compactMap { client, slot in slot.isConnected ? client.rawValue : nil } }.sorted()
    }

    /// One client id as diagnostics show it.
    public struct ClientSnapshot: Sendable, Codable, Equatable {
        public let id: String
        public let connected: Bool
        /// An IPC fallback stream receives the id's pushes.
        public let streaming: Bool
        /// Pushes made to the id.
        public let pushes: Int
        /// Pushes waiting in the id's buffer (no socket, or on their way to it).
        public let buffered: Int
        public let bufferedBytes: Int
        /// Pushes dropped or refused by the id's buffer (a bound reached).
        public let dropped: Int
        /// Messages waiting for the socket to become writable.
        public let outboundQueued: Int
        public let outboundQueuedBytes: Int
        /// Messages dropped by the outbound policy (slow reader).
        public let outboundDropped: Int
        /// Positions, window and counts of a resuming id (SPEC §9); nil for a plain one.
        public let resume: ResumeSnapshot?
    }

    /// Which ids a snapshot shows: listing the whole table (65,536 ids by default) made a
    /// diagnostics answer of 30 MB.
    public enum Listing: Sendable {
        /// The first ones in the order of their names.
        case first(Int)
        /// This one, if the host holds it.
        case only(ClientID)
    }

    public var snapshot: [ClientSnapshot] { snapshot(listing: .first(.max)) }

    public func snapshot(listing: Listing) -> [ClientSnapshot] {
        let listed: [ClientID] =
            switch listing {
            // Sorted outside the table's lock, which every push and handshake takes: sorting
            // 65,536 ids under it is milliseconds of every other thread waiting.
            case .first(let count): Array(slots.withLockedValue { Array($0.keys) }.sorted { $0.rawValue < $1.rawValue }.prefix(count))
            case .only(let client): [client]
            }
        // An id gone since is left out.
        return slots.withLockedValue { slots in
            listed.compactMap { client in
                guard let slot = slots[client] else { return nil }
                return ClientSnapshot(
                    id: client.rawValue, connected: slot.isConnected, streaming: slot.stream != nil, pushes: slot.pushed,
                    buffered: slot.buffer.count, bufferedBytes: slot.buffer.bytes, dropped: slot.dropped,
                    outboundQueued: slot.session?.queuedMessages.load(ordering: .relaxed) ?? 0,
                    outboundQueuedBytes: slot.session?.queuedBytes.load(ordering: .relaxed) ?? 0,
                    outboundDropped: slot.session?.droppedMessages.load(ordering: .relaxed) ?? 0,
                    resume: slot.resume?.snapshot
                )
            }
        }
    }
}
