/// What resume does that diagnostics and metrics count.
enum ResumeEvent: String, CaseIterable, Sendable {
    /// A message sent again after a reconnect.
    case replayed
    /// A client message dropped as already processed.
    case duplicate
    /// A position a client asked for that the window no longer held.
    case lost
    /// A message released unacknowledged because the window was full.
    case evicted
    /// A reconnect that stated an epoch the host no longer held.
    case reset
    /// A message a reset sent again with a new position: sent in the epoch the reset ended and
    /// never acknowledged, to a client that had not read that epoch's greeting.
    case carried
}
