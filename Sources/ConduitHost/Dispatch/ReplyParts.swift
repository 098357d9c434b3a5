import ConduitKit
import ConduitWire
import NIOCore

/// A handler's reply sent in parts (`more: true` on every call of its responder but the last)
/// joined on the host before it is sent, as the IPC path does: clients join a message's parts
/// until one without `more` (SPEC §1), so a push, or another request's reply, written between
/// two of a handler's parts became the end of its reply. Joined by the correlation value (a
/// request without one: by none). The parts held take their bytes from the host's budget.
///
/// A connection makes one only when a part arrives and lets it go once nothing is joined: the
/// routed echo's replies pay the `more` lookup and a nil check, not a copy of this state.
final class ReplyParts {
    private var open: [String: ByteBuffer] = [:]
    /// Replies whose parts the budget could not hold: their requests were answered
    /// `UnavailableError`, and their later parts are dropped up to the last.
    private var refused: Set<String> = []
    private var reservation = BudgetReservation()

    enum Outcome {
        /// Send it: a whole reply, or the last part with those before it.
        case send(Message)
        /// A part kept, or one of a refused reply's dropped: nothing to send.
        case held
        /// The budget can't hold this reply's parts: answer its request `UnavailableError`.
        case refused
    }

    /// Nothing is joined or dropped any more: the connection may let this go.
    var isIdle: Bool { open.isEmpty && refused.isEmpty }

    func add(_ message: Message, budget: BufferBudget) -> Outcome {
        let key = message.headers.correlation?.value ?? ""
        let isPart = message.headers.hasMore
        if refused.contains(key) {
            if !isPart { refused.remove(key) }
            return .held
        }
        guard isPart else {
            guard var joined = open.removeValue(forKey: key) else { return .send(message) }
            _ = reservation.match(heldBytes, in: budget)
            var whole = message
            joined.writeBuffer(&whole.payload)
            whole.payload = joined
            return .send(whole)
        }
        var payload = message.payload
        open[key, default: ByteBuffer()].writeBuffer(&payload)
        guard reservation.match(heldBytes, in: budget, share: .whole) else {
            open[key] = nil
            _ = reservation.match(heldBytes, in: budget)
            refused.insert(key)
            budget.dropped(.hostBudget)
            return .refused
        }
        return .held
    }

    /// What the parts being joined hold.
    private var heldBytes: Int { open.values.reduce(0) { $0 + $1.capacity } }

    func releaseAll(in budget: BufferBudget) {
        open.removeAll()
        refused.removeAll()
        reservation.releaseAll(in: budget)
    }
}
