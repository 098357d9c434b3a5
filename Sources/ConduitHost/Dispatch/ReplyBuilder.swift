import ConduitKit
import ConduitWire
import Foundation
import NIOCore

/// How a handler's answer becomes a reply message (SPEC §3): `route` and the request's
/// `token` (or `seq`) added; errors as `error: <Type>` with `{"err":{message,type}}`.
/// Shared by the WebSocket and IPC transports.
enum ReplyBuilder {
    /// The reply message for a handler's result, counted against the request's route.
    static func message(for result: Result<Reply, ConduitError>, to request: ReplyAddress) -> Message {
        // Counted from the error answered, never from the reply's headers: an echo of a
        // request carrying `error: …` is a success, and request data never names a series. A
        // reply that breaks the framing's limits is the `InternalError` it becomes (it was
        // counted as a success). The success path builds no tuple or optional error: one cost
        // the routed echo 20 instructions a message.
        let message: Message
        let errorType: String?
        switch result {
        case .success(let reply):
            switch reply.message(route: request.route, correlation: request.correlation) {
            case .success(let sendable):
                message = sendable
                errorType = nil
            case .failure(let error):
                message = Self.message(for: error, route: request.route, correlation: request.correlation)
                errorType = error.kind.name
            }
        case .failure(let error):
            message = Self.message(for: error, route: request.route, correlation: request.correlation)
            errorType = error.kind.name
        }
        request.counter?.countReply(bytes: message.payload.readableBytes, errorType: errorType, since: request.received)
        return message
    }

    static func message(for result: Result<Reply, ConduitError>, route: String?, correlation: (name: String, value: String)?) -> Message {
        switch result {
        case .success(let reply):
            switch reply.message(route: route, correlation: correlation) {
            case .success(let sendable): sendable
            case .failure(let error): message(for: error, route: route, correlation: correlation)
            }
        case .failure(let error):
            message(for: error, route: route, correlation: correlation)
        }
    }

    /// An error reply: `error: <Type>` and `{"err":{message,type}}`. Kept out of line: the
    /// success path is the routed echo's.
    @inline(never)
    private static func message(for error: ConduitError, route: String?, correlation: (name: String, value: String)?) -> Message {
        var message = Message(headers: [:], payload: error.payload)
        if let route { message.headers.append(HeaderName.route, route) }
        if let correlation { message.headers.append(correlation.name, correlation.value) }
        message.headers.append(HeaderName.error, error.kind.name)
        return message
    }

    /// The answer to a relay (`to`) that the recipient's queue accepted.
    static func delivered(_ correlation: (name: String, value: String)) -> Message {
        message(for: .success(try! .json(["delivered": true])), route: nil, correlation: correlation)
    }
}
