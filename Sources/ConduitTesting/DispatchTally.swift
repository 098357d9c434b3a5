public import ConduitKit
import ConduitWire
import Synchronization

/// `test.tally` (named so as not to clash with a `TallyHandler` a module author may have): counts how often each request (header `n`) of each client reached it, for
/// exactly-once tests, and answers with the payload and the same `n`. A request with header
/// `report` is not counted: it is answered with the sender's counts as JSON.
public struct DispatchTally: ConduitHandler {
    public static let kind = HandlerKind(DispatchTally.self, name: "test.tally")
    /// Dispatches per client id and `n`, over every instance in the process.
    private static let counts = Mutex<[String: [String: Int]]>([:])

    /// How often each `n` of `client` was dispatched.
    public static func counts(of client: String) -> [String: Int] {
        counts.withLock { $0[client, default: [:]] }
    }

    public init(options: NoOptions, context: HandlerContext) {}

    public func handle(_ request: Request, responder: Responder) {
        if request.headers["report"] != nil { return responder.reply(json: Self.counts(of: request.client.rawValue)) }
        Self.counts.withLock { $0[request.client.rawValue, default: [:]][request.headers["n"] ?? "", default: 0] += 1 }
        responder.reply(headers: ["n": request.headers["n"] ?? ""], payload: request.payload)
    }
}
