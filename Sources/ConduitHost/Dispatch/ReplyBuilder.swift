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
        let message = message(for: result, route: request.route, correlation: request.correlation)
        // Counted from the handler's result, never from the reply's headers: an echo of a
        // request carrying `error: …` is a success, and request data never names a series.
        let errorType: String? = if case .failure(let error) = result { error.kind.name } else { nil }
        request.counter?.countReply(bytes: message.payload.readableBytes, errorType: errorType, since: request.received)
        return message
    }

    static func message(for result: Result<Reply, ConduitError>, route: String?, correlation: (name: String, value: String)?) -> Message {
        var message: Message
        switch result {
        case .success(let reply):
            switch reply.message(route: route, correlation: correlation) {
            case .success(let sendable): message = sendable
            case .failure(let error): return Self.message(for: .failure(error), route: route, correlation: correlation)
            }
        case .failure(let error):
            message = Message(headers: [:], payload: error.payload)
            if let route { message.headers.append(HeaderName.route, route) }
            if let correlation { message.headers.append(correlation.name, correlation.value) }
            message.headers.append(HeaderName.error, error.kind.name)
        }
        return message
    }

    /// The answer to a relay (`to`) that the recipient's queue accepted.
    static func delivered(_ correlation: (name: String, value: String)) -> Message {
        message(for: .success(try! .json(["delivered": true])), route: nil, correlation: correlation)
    }
}
