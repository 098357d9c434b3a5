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
/// again once there is room when there is none (`pushLast`).
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

    mutating func finish(aborted: Bool, while wanted: () -> Bool) async {
        await pushLast(message(aborted ? ["complete": "true", "aborted": "true"] : ["complete": "true"]), while: wanted)
    }

    mutating func fail(_ error: ConduitError, while wanted: () -> Bool) async {
        await pushLast(message([HeaderName.error: error.kind.name, "complete": "true"], payload: error.payload), while: wanted)
    }

    /// Pushes the stream's last message, and again once there is room when there is none (the
    /// id's buffer or the host's budget full: refused by the same budget as the token before
    /// it, it was lost, and the client waited for a stream that had ended). Within the stream,
    /// so an abort is answered after it; for at most `congestionTimeout`, and while `wanted`
    /// (the id has not expired, the handler has not stopped: a message to a gone id makes it
    /// anew). The waits ignore the task's cancellation: an aborted stream still owes its end.
    private func pushLast(_ last: Message, while wanted: () -> Bool) async {
        let deadline = ContinuousClock.now + congestionTimeout
        while case .dropped(let cause) = pushes.push(last, to: client, delivery: .reliable),
            cause.isWantOfRoom, ContinuousClock.now < deadline, wanted()
        {
            await roomOrASecond()
            await pause(StreamEnd.retryPause)
        }
    }

    /// Until the id's queue has room or its id expires (`whenWritable`), or a second passes: a
    /// full budget with the id's queue empty calls back at once, a stop must not wait long.
    private func roomOrASecond() async {
        let wakeup = Wakeup()
        await withCheckedContinuation { continuation in
            wakeup.wait(continuation)
            pushes.whenWritable(client) { wakeup.wake() }
            eventLoop.scheduleTask(in: .seconds(1)) { wakeup.wake() }
        }
    }

    private func pause(_ amount: TimeAmount) async {
        await withCheckedContinuation { continuation in
            eventLoop.scheduleTask(in: amount) { continuation.resume() }
        }
    }

    @discardableResult
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
