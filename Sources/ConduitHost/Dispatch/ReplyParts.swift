import ConduitKit
import ConduitWire
import NIOCore

/// A handler's reply sent in parts (`more: true` on every call of its responder but the last)
/// joined on the host before it is sent, as the IPC path does: clients join a message's parts
/// until one without `more` (SPEC §1), so a push, or another request's reply, written between
/// two of a handler's parts became the end of its reply. Joined per request (its token and the
/// moment it reached its handler: a later request reusing the token is another). The parts held
/// take their bytes from the host's budget.
///
/// A connection makes one only when a part arrives and lets it go once nothing is joined: the
/// routed echo's replies pay the `more` lookup and a nil check, not a copy of this state.
final class ReplyParts {
    struct Request: Hashable {
        let correlation: String
        let received: NIODeadline
    }

    /// Who to answer when a request's parts stop being joined unanswered.
    struct Unanswered {
        let route: String?
        let correlation: (name: String, value: String)?
    }

    private struct Joining {
        var parts = ByteBuffer()
        let since: NIODeadline
        let unanswered: Unanswered
    }

    private var open: [Request: Joining] = [:]
    /// Requests whose parts went on too long, dropped since the last `takeExpired()`: each is
    /// answered `TimeoutError` by the connection (it was never answered: its client waited
    /// for its own timeout, and the handler's last part, when it came, was dropped too).
    private var expired: [Unanswered] = []
    /// Requests whose parts are dropped up to the last: the budget could not hold them (the
    /// request was answered `UnavailableError`), or they went on too long. Kept until that last
    /// part (forgotten after a while, the parts that came on made a reply of their own, sent as
    /// a success: a truncated answer), the oldest let go past `maxDroppingBytes`.
    private var dropping: [Request: NIODeadline] = [:]
    /// What `dropping` holds: bounded in bytes, as a client's tokens may be long.
    private var droppingBytes = 0
    static let maxDroppingBytes = 64 << 10
    private var reservation = BudgetReservation()
    /// How long a reply's parts may keep coming: a handler that never sends the last one (a
    /// body that ran on past its deadline) would otherwise hold them for the connection's life.
    private let maxAge: TimeAmount

    init(maxAge: TimeAmount) {
        self.maxAge = maxAge
    }

    enum Outcome {
        /// Send it: a whole reply, the last part with those before it, or an error that ends
        /// the parts (they are dropped: the request failed).
        case send(Message)
        /// A part kept, or one of a reply being dropped: nothing to send.
        case held
        /// The budget can't hold this reply's parts: answer its request `UnavailableError`.
        case refused
    }

    /// Nothing is joined or dropped any more: the connection may let this go.
    var isIdle: Bool { open.isEmpty && dropping.isEmpty && expired.isEmpty }

    func add(_ message: Message, of request: Request, budget: BufferBudget) -> Outcome {
        let now = NIODeadline.now()
        dropOld(before: now - maxAge, budget: budget)
        let isPart = message.headers.hasMore
        if dropping[request] != nil {
            if !isPart { stopDropping(request) }
            return .held
        }
        guard isPart else {
            guard var joined = open.removeValue(forKey: request)?.parts else { return .send(message) }
            _ = reservation.match(heldBytes, in: budget)
            guard message.headers[HeaderName.error] == nil else { return .send(message) }
            var whole = message
            joined.writeBuffer(&whole.payload)
            whole.payload = joined
            return .send(whole)
        }
        var payload = message.payload
        // The default is built only for a request's first part (an autoclosure): the route and
        // token looked up once a join, not once a part.
        open[request, default: Joining(since: now, unanswered: Unanswered(route: message.headers.route, correlation: message.headers.correlation))]
            .parts.writeBuffer(&payload)
        guard reservation.match(heldBytes, in: budget, share: .whole) else {
            open[request] = nil
            _ = reservation.match(heldBytes, in: budget)
            stopJoining(request, at: now)
            budget.dropped(.hostBudget)
            return .refused
        }
        return .held
    }

    /// Drops the parts of replies begun before `limit`; the rest of each is dropped as it comes.
    private func dropOld(before limit: NIODeadline, budget: BufferBudget) {
        let old = open.filter { $0.value.since < limit }
        guard !old.isEmpty else { return }
        for (request, joining) in old {
            open[request] = nil
            stopJoining(request, at: .now())
            expired.append(joining.unanswered)
        }
        _ = reservation.match(heldBytes, in: budget)
    }

    private func stopJoining(_ request: Request, at now: NIODeadline) {
        while !dropping.isEmpty, droppingBytes + Self.bytes(of: request) > Self.maxDroppingBytes,
              let oldest = dropping.min(by: { $0.value < $1.value }) {
            stopDropping(oldest.key)
        }
        dropping[request] = now
        droppingBytes += Self.bytes(of: request)
    }

    private func stopDropping(_ request: Request) {
        guard dropping.removeValue(forKey: request) != nil else { return }
        droppingBytes -= Self.bytes(of: request)
    }

    /// The requests dropped as too old since the last call, to be answered `TimeoutError`.
    func takeExpired() -> [Unanswered] {
        defer { expired.removeAll() }
        return expired
    }

    /// An entry's memory, roughly: its token and the dictionary's slot.
    private static func bytes(of request: Request) -> Int { request.correlation.utf8.count + 64 }

    /// What the parts being joined hold.
    private var heldBytes: Int { open.values.reduce(0) { $0 + $1.parts.capacity } }

    func releaseAll(in budget: BufferBudget) {
        open.removeAll()
        expired.removeAll()
        dropping.removeAll()
        droppingBytes = 0
        reservation.releaseAll(in: budget)
    }
}
