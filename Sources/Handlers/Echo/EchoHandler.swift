public import ConduitKit

/// `echo`: replies with the request's payload and headers (route and token kept).
///
/// The smallest complete module, and the one the benchmarks drive: it answers on the
/// connection's event loop without a task or a copy, so its reply is written in the same
/// flush as the read that brought the request.
public struct EchoHandler: ConduitHandler {
    public init(options: NoOptions, context: HandlerContext) {}

    public func handle(_ request: Request, responder: Responder) {
        responder.reply(headers: request.headers, payload: request.payload)
    }
}
