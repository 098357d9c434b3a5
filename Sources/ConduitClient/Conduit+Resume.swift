import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

/// Resume on the client (SPEC §9): numbered sends kept until acknowledged, sent again after
/// the greeting of a new socket, and acknowledgements of what was delivered.
extension Conduit {
    /// Numbers and keeps `message`; sends it now when the socket is open and its greeting was
    /// answered, else it goes with the next socket's resend. Numbered under the state's lock
    /// and written by a task queued on the event loop in the same step, so positions reach the
    /// socket in order (and a write that closes the socket can't come back into the lock).
    /// False: the window is full, or the client is closed (a message kept then would never go).
    func sendNumbered(_ message: Message, _ resumption: ClientResume) throws(WireError) -> Bool {
        // With room for `pos` (and `more` on parts): a message numbered without it could not
        // be encoded, and its caller waited out its timeout.
        try message.validateHeaderLimitsForSending(numbered: true)
        let (accepted, reconnect) = state.withLockedValue { state -> (Bool, Bool) in
            guard !state.isClosed, let parts = resumption.number(message) else { return (false, false) }
            guard let connection = state.connection, state.resumeReady else { return (true, true) }
            // The headers were checked: parts can't fail to encode (a closed channel just
            // drops them, and they are sent again after the reconnect).
            connection.channel.eventLoop.execute {
                for part in parts { try? connection.send(part) }
                resumption.sent(parts)
            }
            return (true, false)
        }
        if reconnect, autoReconnect { startReconnect() }
        return accepted
    }

    /// A new socket's greeting, on its event loop: sends again, in order, what the host has
    /// not processed; new messages follow. The sends are queued too: written at once, a write
    /// that meets a reset connection closes it there and then, and a reconnect started from that
    /// close would state the old epoch, before the greeting being handled has been taken in (the
    /// host then resets, and what was unconfirmed is lost). Queued under the lock that makes the
    /// socket ready, as `sendNumbered` queues: queued after it, a message numbered in between
    /// went first, and the host took the resent ones for duplicates and dropped them.
    func resendAfter(_ greeting: Message) {
        guard let resumption else { return }
        state.withLockedValue { state in
            guard let connection = state.connection else { return }
            state.resumeReady = true
            let again = resumption.resend(after: greeting)
            connection.channel.eventLoop.execute {
                for message in again { try? connection.send(message) }
                resumption.sent(again)
            }
        }
    }

    /// Acknowledges delivered host positions every 32 messages, or 200 ms after the first owed.
    func acknowledgeWhenDue(_ resumption: ClientResume) {
        switch resumption.dueAck() {
        case .now(let ack): sendAcknowledgement(ack)
        case .later:
            eventLoop.scheduleTask(in: ClientResume.ackWithin) {
                if case .now(let ack) = resumption.dueAck(force: true) { self.sendAcknowledgement(ack) }
            }
        case .no: break
        }
    }

    /// A bare `ack` on the socket; while it is down the next connect's `resume=` says the same.
    private func sendAcknowledgement(_ ack: Message) {
        guard let connection = state.withLockedValue({ $0.connection }) else { return }
        try? connection.send(ack)
    }
}
