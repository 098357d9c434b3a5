import ConduitKit
import ConduitWire

/// `abandoning`: takes the request's place with `holdWhileRunning` (`mode: hold`) or
/// `respondWhenDone` (`mode: finish`) and lets go of the callback without calling it, as a
/// handler does that returns early on an error path and forgets its `end()`.
struct AbandoningHandler: ConduitHandler {
    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) throws {
        switch request.headers["mode"] {
        case "hold":
            responder.holdWhileRunning { _ in }
            responder.reply(json: "held")
        case "finish":
            responder.respondWhenDone { _ in }
        default:
            throw ConduitError.badRequest("mode: hold or finish")
        }
    }
}
