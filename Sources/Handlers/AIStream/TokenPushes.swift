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
///
/// No token is dropped (SPEC §3): tokens are `.reliable` pushes, and while the client is
/// congested the stream waits (the generator with it) until the host says it is writable, for
/// at most `congestionTimeout`. A token its queue refuses, or a client congested for longer,
/// ends the stream with an `UnavailableError` instead of a gap. The last message is pushed
/// again once there is room when there is none (`StreamEnd`): refused by the same full budget
/// as the token before it, it was lost, and the client waited for a stream that had ended.
struct TokenPushes {
    private let pushes: any PushSink
    private let client: ClientID
    private let congestionTimeout: Duration
    /// Where the last message is tried again.
    private let eventLoop: any EventLoop
    private let base: Headers
    private var index = 0
    /// Set when the client's queue refused a token: the stream can't go on without a gap.
    private(set) var refusal: ConduitError?

    init(
        pushes: any PushSink, client: ClientID, route: String, correlation: (name: String, value: String), congestionTimeout: Duration,
        eventLoop: any EventLoop
    ) {
        self.pushes = pushes
        self.client = client
        self.congestionTimeout = congestionTimeout
        self.eventLoop = eventLoop
        base = [HeaderName.route: route, "source": route, correlation.name: correlation.value]
    }

    /// Pushes one token, then waits while the client is congested. After a refusal the
    /// generating task is cancelled and later tokens are ignored.
    mutating func token(_ text: String) async {
        guard refusal == nil else { return }
        if case .dropped(let cause) = push(["complete": "false"], payload: ByteBuffer(string: text)) {
            // Its index goes to the stream's last message: the client sees no gap before it.
            index -= 1
            return end(.unavailable("the client's queue could not take token \(index) (\(cause.rawValue)); the stream ends here"))
        }
        guard pushes.isCongested(client), await !writable(within: congestionTimeout) else { return }
        // A wait cut short by `chat.abort`, `cancel` or the id's expiry is no timeout: the
        // stream ends as aborted.
        guard !Task.isCancelled else { return }
        end(.unavailable("the client took nothing for \(congestionTimeout); the stream ends here"))
    }

    /// Ends the stream with `refusal`: the generating task is cancelled.
    private mutating func end(_ refusal: ConduitError) {
        self.refusal = refusal
        withUnsafeCurrentTask { $0?.cancel() }
    }

    /// Waits until the client is writable (true), or `timeout` (false).
    private func writable(within timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { [pushes, client] waits in
            waits.addTask {
                await pushes.writable(client)
                return !Task.isCancelled
            }
            waits.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await waits.next() ?? false
            waits.cancelAll()
            return first
        }
    }

    mutating func finish(aborted: Bool) {
        StreamEnd.push(message(aborted ? ["complete": "true", "aborted": "true"] : ["complete": "true"]), to: client, pushes: pushes, retryingOn: eventLoop)
    }

    mutating func fail(_ error: ConduitError) {
        StreamEnd.push(message([HeaderName.error: error.kind.name, "complete": "true"], payload: error.payload), to: client, pushes: pushes, retryingOn: eventLoop)
    }

    private mutating func push(_ extra: Headers, payload: ByteBuffer) -> PushOutcome {
        pushes.push(message(extra, payload: payload), to: client, delivery: .reliable)
    }

    /// The stream's next message.
    private mutating func message(_ extra: Headers, payload: ByteBuffer = ByteBuffer()) -> Message {
        var headers = base
        headers.append("index", String(index))
        for (name, value) in extra { headers.append(name, value) }
        index += 1
        return Message(headers: headers, payload: payload)
    }
}
