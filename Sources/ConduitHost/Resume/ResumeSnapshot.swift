/// One resuming id as diagnostics show it (SPEC §9).
public struct ResumeSnapshot: Sendable, Codable, Equatable {
    public let epoch: String
    /// The last host position sent to the id.
    public let sent: UInt64
    /// The last host position the client acknowledged.
    public let acknowledged: UInt64
    /// Messages sent and not acknowledged, kept for a replay.
    public let windowMessages: Int
    /// Their encoded bytes, which the window's bound counts.
    public let windowBytes: Int
    /// The memory the window takes (its storage included), charged to the host-wide budget.
    public let windowMemoryBytes: Int
    /// The last client position the host processed and acknowledges.
    public let clientAcknowledged: UInt64
    /// Messages sent again after a reconnect.
    public let replayed: Int
    /// Client messages dropped as already processed.
    public let duplicates: Int
    /// Positions a client asked for that the window no longer held.
    public let lost: Int
    /// Messages released unacknowledged because the window was full.
    public let evicted: Int
    /// Reconnects that stated an epoch the host no longer held.
    public let resets: Int
    /// Messages a reset sent again with new positions: unacknowledged in the epoch it ended,
    /// to a client that never read that epoch's greeting.
    public let carried: Int
}
