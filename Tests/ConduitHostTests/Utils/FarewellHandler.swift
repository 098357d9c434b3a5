import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers

/// `farewell`: pushes one message to every id that expires (a "session ended" notice), and
/// pushes `count` copies of the request's payload to the sender while holding its own lock,
/// the lock its `clientEvent` takes too. A careless but ordinary handler: the host must not
/// call it back from inside its own push.
struct FarewellHandler: ConduitHandler {
    static let events = NIOLockedValueBox<[ClientEvent]>([])
    let pushes: any PushSink

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    func handle(_ request: Request, responder: Responder) throws {
        let count = Int(request.headers["count"] ?? "0") ?? 0
        Self.events.withLockedValue { _ in
            for _ in 0..<count {
                pushes.push(Message(headers: ["route": "farewell.data"], payload: request.payload), to: request.client)
            }
        }
        responder.reply(json: count)
    }

    func clientEvent(_ event: ClientEvent) {
        Self.events.withLockedValue { $0.append(event) }
        if case .expired(let id) = event { pushes.push(Message(headers: ["route": "farewell"]), to: id) }
    }

    static func seen(_ event: ClientEvent) -> Bool {
        events.withLockedValue { $0.contains(event) }
    }
}
