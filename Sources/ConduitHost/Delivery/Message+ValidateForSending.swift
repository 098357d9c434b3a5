import ConduitWire

extension Message {
    /// Checks a message the host is to send (a push, a relay, a reply) against the framing's
    /// limits with room for what its way out adds. Room for resume's `pos` (SPEC §9) is kept on
    /// every message: whether its id resumes can change while it waits, and a message accepted
    /// without room was dropped as it was written.
    func validateForSending() throws(WireError) {
        try validateHeaderLimitsForSending(numbered: true)
    }
}
