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
    /// Every this many tokens the stream waits until the requesting connection's event loop
    /// has run what it was handed, so an unpaced generator cannot pile up pushes faster than
    /// the host encodes and writes them (a slow reader then meets the host's outbound policy).
    static let tokensPerCatchUp = 64

    private let pushes: any PushSink
    private let client: ClientID
    private let base: Headers
    private let eventLoop: any EventLoop
    private var index = 0

    init(
        pushes: any PushSink, client: ClientID, route: String, correlation: (name: String, value: String),
        eventLoop: any EventLoop
    ) {
        self.pushes = pushes
        self.client = client
        self.eventLoop = eventLoop
        base = [HeaderName.route: route, "source": route, correlation.name: correlation.value]
    }

    mutating func token(_ text: String) async {
        push(["complete": "false"], payload: ByteBuffer(string: text))
        if index % Self.tokensPerCatchUp == 0 {
            // Fails only when the loop is shutting down, and then there is nothing to wait for.
            try? await eventLoop.submit {}.get()
        }
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
