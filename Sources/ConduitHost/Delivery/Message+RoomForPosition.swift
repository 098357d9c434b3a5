import ConduitWire

extension Message {
    /// Headers every message the host sends leaves free under the framing's limit: resume's
    /// `pos` (SPEC §9), added on the way out to a resuming id. Whether an id resumes can change
    /// while a message waits for it, so the room is kept on every message, resuming or not:
    /// a message accepted without it was dropped as it was written.
    static let headersKeptForPosition = 1

    /// Checks the header limits of a message the host is to send, with room for `pos`.
    func validateHeaderLimitsForSending() throws(WireError) {
        try validateHeaderLimits(leavingRoomFor: Self.headersKeptForPosition)
    }
}
