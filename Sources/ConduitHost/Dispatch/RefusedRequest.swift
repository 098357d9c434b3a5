/// A chunked request one of whose parts was refused (too large, over the budget, or not
/// decodable), known by the `token` (or `seq`) its parts carry, as both clients put on every
/// part. Its later parts and the message that completes it are dropped: its client has its
/// error. A part or a request without that correlation starts anew (SPEC §1: the next chunk
/// starts a new queue), as does everything after a refused part that carried none.
struct RefusedRequest {
    let correlation: (name: String, value: String)

    init?(_ correlation: (name: String, value: String)?) {
        guard let correlation else { return nil }
        self.correlation = correlation
    }

    func isSameRequest(_ other: (name: String, value: String)?) -> Bool {
        other.map { $0 == correlation } ?? false
    }
}
