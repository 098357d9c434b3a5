public import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers

/// `counter`: a per-client counter. `add` (header `by`, default 1) adds to the sender's count,
/// replies with it and pushes it as `<mount>.changed`; `get` replies with it. Operations are
/// relative to the mount, so the YAML may put it under any prefix.
public struct CounterHandler: ConduitHandler {
    public static let kind = HandlerKind(CounterHandler.self, name: "counter")

    private let context: HandlerContext
    private let counts = NIOLockedValueBox<[ClientID: Int]>([:])

    public init(options: NoOptions, context: HandlerContext) {
        self.context = context
    }

    public func handle(_ request: Request, responder: Responder) throws {
        switch request.operation {
        case "add":
            guard let by = Int(request.headers["by"] ?? "1"), (-1_000_000...1_000_000).contains(by) else {
                throw ConduitError.badRequest("'by' must be a whole number within ±1000000")
            }
            let count = counts.withLockedValue { counts in
                counts[request.client, default: 0] += by
                return counts[request.client]!
            }
            context.pushes.push(Message(headers: ["route": context.route("changed"), "count": "\(count)"]), to: request.client)
            responder.reply(json: count)
        case "get":
            responder.reply(json: counts.withLockedValue { $0[request.client] ?? 0 })
        default:
            throw ConduitError.notFound("no counter operation '\(request.route)'; try \(context.route("add")) or \(context.route("get"))")
        }
    }

    public func clientEvent(_ event: ClientEvent) {
        guard case .expired(let client) = event else { return }
        _ = counts.withLockedValue { $0.removeValue(forKey: client) }
    }
}
