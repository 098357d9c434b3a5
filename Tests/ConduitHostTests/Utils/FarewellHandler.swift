import ConduitKit
import ConduitWire
import NIOCore
import NIOConcurrencyHelpers

/// `farewell`: pushes one message to every id that expires (a "session ended" notice), and
/// pushes `count` copies of the request's payload to the sender while holding its own lock,
/// the lock its `clientEvent` takes too. A careless but ordinary handler: the host must not
/// call it back from inside its own push. With `note`, it pushes a message marked `more: true`.
struct FarewellHandler: ConduitHandler {
    static let events = NIOLockedValueBox<[ClientEvent]>([])
    let pushes: any PushSink

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    func handle(_ request: Request, responder: Responder) throws {
        if let note = request.headers["note"] {
            // A push marked as the first part of a message, as no push is: then the reply.
            pushes.push(Message(headers: ["route": "farewell.note", "more": "true"], payload: ByteBuffer(string: note)), to: request.client)
            return responder.reply(payload: ByteBuffer(string: "reply"))
        }
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
