import ConduitWire

extension Message {
    /// Checks a message the host is to send (a push, a relay, a reply) against the framing's
    /// limits with room for what its way out adds. Room for resume's `pos` (SPEC §9) is kept on
    /// every message: whether its id resumes can change while it waits, and a message accepted
    /// without room was dropped as it was written.
    package func validateForSending() throws(WireError) {
        try validateHeaderLimitsForSending(numbered: true)
    }
}

extension Reply {
    /// The message a request's client receives for this reply: `route` and the request's
    /// correlation field in place of any the handler set (of either name). `InternalError`
    /// instead when it breaks the framing's limits (`validateForSending`): checked before the
    /// host's fields were in, such a reply was dropped as it was written and the client waited
    /// in vain.
    package func message(route: String?, correlation: (name: String, value: String)?) -> Result<Message, ConduitError> {
        var message = Message(headers: headers, payload: payload)
        if let route { message.headers.replaceOrAppend(HeaderName.route, route) }
        if let correlation {
            // A `token` the handler set goes from the reply to a `seq` request: read first, it
            // was the reply's correlation. (Beside a request's `token`, a `seq` is never read.)
            if correlation.name == HeaderName.seq { message.headers.removeAll(HeaderName.token) }
            message.headers.replaceOrAppend(correlation.name, correlation.value)
        }
        do throws(WireError) {
            try message.validateForSending()
        } catch {
            let withFields = route == nil && correlation == nil ? "" : " with the request's route and correlation field"
            return .failure(.internal("the handler's reply\(withFields) exceeds the framing limits: \(error.message)"))
        }
        return .success(message)
    }
}
