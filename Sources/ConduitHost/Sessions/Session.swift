import ConduitKit
import ConduitWire
import NIOCore
import NIOWebSocket
import Synchronization

/// One open WebSocket of a client id, usable from any thread. The connection's state lives
/// in its `SessionHandler` on the event loop; this handle hops there when needed.
final class Session: ReplyDestination {
    let client: ClientID
    let window: String
    /// What the connect asked of resume (SPEC §9); nil for a plain connection.
    let resumeRequest: ResumeRequest?
    /// The connection's place in the order the listener accepted them (`ArrivalOrder`).
    let arrival: UInt64
    let channel: any Channel
    /// The connection's cancellable requests: its id's next socket may cancel them (SPEC §8).
    let cancellations: CancellationRegistry
    private let handler: NIOLoopBound<SessionHandler>
    /// Messages waiting for the socket to become writable (for diagnostics).
    let queuedMessages = Atomic<Int>(0)
    /// Their bytes: read by the directory for congestion and its bounds.
    let queuedBytes = Atomic<Int>(0)
    /// Messages dropped by the outbound policy.
    let droppedMessages = Atomic<Int>(0)
    /// `close` was asked already: only the first counts (the handler ignores the rest), and a
    /// burst of pushes to a full resuming socket asked once a push.
    private let closeAsked = Atomic<Bool>(false)

    init(client: ClientID, window: String, resumeRequest: ResumeRequest?, arrival: UInt64, channel: any Channel,
        cancellations: CancellationRegistry, handler: SessionHandler
    ) {
        self.client = client
        self.window = window
        self.resumeRequest = resumeRequest
        self.arrival = arrival
        self.channel = channel
        self.cancellations = cancellations
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }

    /// Sends a reply (split if large) from any thread.
    func send(_ message: Message) {
        if channel.eventLoop.inEventLoop {
            handler.value.send(message)
        } else {
            channel.eventLoop.execute { self.handler.value.send(message) }
        }
    }

    /// Answers one of this connection's requests, from any thread.
    /// Answers one of this connection's requests, from any thread; a handler's parts are
    /// joined first (`ReplyParts`).
    func deliver(_ result: Result<Reply, ConduitError>, to request: ReplyAddress) {
        let message = ReplyBuilder.message(for: result, to: request)
        let received = request.received
        if channel.eventLoop.inEventLoop {
            handler.value.sendReply(message, received: received)
        } else {
            channel.eventLoop.execute { self.handler.value.sendReply(message, received: received) }
        }
    }

    /// Sends or queues a message from any thread. `reserved`: its bytes are already taken from
    /// the host's budget (it comes from a buffer). `asNewest`: should the socket have closed
    /// meanwhile, it goes back after what waits for the id (else in front: an older one).
    func send(_ entry: MessageQueue.Entry, reserved: Bool, asNewest: Bool = false) {
        if channel.eventLoop.inEventLoop {
            handler.value.send(entry, reserved: reserved, asNewest: asNewest)
        } else {
            channel.eventLoop.execute { self.handler.value.send(entry, reserved: reserved, asNewest: asNewest) }
        }
    }

    /// Sends or queues a message on the socket's event loop, saying what became of it.
    @discardableResult
    func sendOnLoop(_ entry: MessageQueue.Entry, reserved: Bool) -> PushOutcome {
        handler.value.send(entry, reserved: reserved)
    }

    /// Makes the connection a resuming one: sends the greeting and the replay before anything
    /// else. On the socket's event loop.
    func beginResume(_ state: ResumeState, _ greeting: ResumeState.Greeting) {
        handler.value.beginResume(state, greeting)
    }

    /// Sends a run of messages from the id's buffer, in order, on the socket's event loop.
    func sendOnLoop(batch entries: CircularBuffer<MessageQueue.Entry>) {
        handler.value.send(batch: entries)
    }

    /// Starts the close handshake with `code` now, on the socket's event loop: for a socket
    /// refused as it attaches, whose first frames may follow at once in the same read (SwiftNIO
    /// hands on what came behind the handshake); a close queued behind them let them be dispatched.
    func refuse(code: WebSocketErrorCode, reason: String) {
        handler.value.close(code: code, reason: reason)
    }

    /// Starts the close handshake with `code`.
    func close(code: WebSocketErrorCode, reason: String) {
        guard closeAsked.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        channel.eventLoop.execute { self.handler.value.close(code: code, reason: reason) }
    }
}
