import ConduitKit
import ConduitWire
import Foundation
import NIOCore

/// The messages of one stream, pushed to the client that asked (SPEC §3, §5). Every one
/// carries `route` and `source` (the request's route), the request's `token` (or `seq`),
/// `index` (0, 1, 2, … so a reader can spot a gap) and `complete`. Tokens carry
/// `complete: false` and the token's text; the last message carries `complete: true` and an
/// empty payload, plus `aborted: true` when the stream was aborted. A failure ends the stream
/// instead with an error message shaped like an error reply (`error: <Type>`, payload
/// `{"err":{"type":…,"message":…}}`), also `complete: true`.
struct TokenPushes {
    private let pushes: any PushSink
    private let client: ClientID
    private let base: Headers
    private var index = 0

    init(pushes: any PushSink, client: ClientID, route: String, correlation: (name: String, value: String)) {
        self.pushes = pushes
        self.client = client
        base = [HeaderName.route: route, "source": route, correlation.name: correlation.value]
    }

    mutating func token(_ text: String) {
        push(["complete": "false"], payload: ByteBuffer(string: text))
    }

    mutating func finish(aborted: Bool) {
        push(aborted ? ["complete": "true", "aborted": "true"] : ["complete": "true"])
    }

    mutating func fail(_ error: ConduitError) {
        let body = ErrorBody(err: .init(type: error.kind.name, message: error.message))
        let payload = (try? JSONEncoder().encode(body)).map { ByteBuffer(bytes: $0) } ?? ByteBuffer()
        push([HeaderName.error: error.kind.name, "complete": "true"], payload: payload)
    }

    private mutating func push(_ extra: Headers, payload: ByteBuffer = ByteBuffer()) {
        var headers = base
        headers.append("index", String(index))
        for (name, value) in extra { headers.append(name, value) }
        pushes.push(Message(headers: headers, payload: payload), to: client)
        index += 1
    }

    private struct ErrorBody: Encodable {
        struct Err: Encodable {
            let type: String
            let message: String
        }
        let err: Err
    }
}
