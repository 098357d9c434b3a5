public import ConduitKit
import ConduitWire
public import ConduitHost
import NIOCore

/// `test.push`, known only to `conduit-test-host` (the JavaScript client's tests):
/// pushes the payload `count` times (header `n` = from…from+count-1, `from` default 1) to the
/// client named in `to`, as a
/// streaming handler would, so pushes to an id whose socket is down can be produced on demand.
/// A header `push-<name>` is set on each push as `<name>` (`push-route` replaces its route):
/// what a careless handler or worker may push.
public struct TestPushHandler: ConduitHandler {
    public static let kind = HandlerKind(TestPushHandler.self, name: "test.push")
    private let pushes: any PushSink
    private static let pushedPrefix = "push-"

    public init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    public func handle(_ request: Request, responder: Responder) throws {
        guard let target = ClientID(try request.require("to")) else {
            throw ConduitError.badRequest("'to' must be a client id")
        }
        guard let count = Int(request.headers["count"] ?? "1"), (1...10_000).contains(count) else {
            throw ConduitError.badRequest("'count' must be 1…10000")
        }
        guard let first = Int(request.headers["from"] ?? "1"), first >= 0, first <= Int.max - count else {
            throw ConduitError.badRequest("'from' must be a whole number")
        }
        var headers: Headers = ["route": request.route]
        for (name, value) in request.headers where name.hasPrefix(Self.pushedPrefix) {
            headers.replaceOrAppend(String(name.dropFirst(Self.pushedPrefix.count)), value)
        }
        for n in first..<(first + count) {
            var numbered = headers
            numbered.append("n", "\(n)")
            pushes.push(Message(headers: numbered, payload: request.payload), to: target)
        }
        responder.reply(json: ["pushed": count])
    }
}

extension HandlerCatalog {
    /// The kinds `conduit-test-host` adds to the built-in ones for the JavaScript client's
    /// tests: `test.push`, `test.tally` (counts dispatches) and `test.silent` (never replies;
    /// records cancellations).
    public static let testHandlers = HandlerCatalog([
        TestPushHandler.kind,
        DispatchTally.kind,
        HandlerKind(SilentHandler.self, name: "test.silent"),
    ])
}
