import ConduitKit
import ConduitWire
import NIOCore

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
