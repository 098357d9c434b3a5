import ConduitKit
import ConduitWire
import NIOCore
import Synchronization

/// Replies with the request's payload in three parts, the first two with `more=true`.
struct PartsHandler: ConduitHandler {
    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) {
        var payload = request.payload
        let third = payload.readableBytes / 3
        for part in [payload.readSlice(length: third)!, payload.readSlice(length: third)!] {
            responder.reply(headers: ["more": "true"], payload: part)
        }
        responder.reply(headers: ["parts": "3"], payload: payload)
    }
}

/// Keeps per-id state the way a stream handler does (a UDP socket, an AI session): it pushes
/// to the requesting id and records the ids it was told have expired.
struct StatefulHandler: ConduitHandler {
    static let expired = Mutex<Set<String>>([])
    let pushes: any PushSink

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    func handle(_ request: Request, responder: Responder) {
        pushes.push(Message(headers: ["route": "state"], payload: request.payload), to: request.client)
        responder.reply(json: true)
    }

    func clientEvent(_ event: ClientEvent) {
        if case .expired(let id) = event { _ = Self.expired.withLock { $0.insert(id.rawValue) } }
    }
}
