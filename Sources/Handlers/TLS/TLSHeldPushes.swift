import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers

/// The pushes of a connection that is not its client's yet: held until `release` (the
/// certificate's name checked, the connection registered), in order. A connection never
/// released (a name check failed, a connect cancelled or raced) pushes nothing: pushed at once,
/// a server that failed the name check got its plaintext to the client, and a cancelled
/// connect's bytes went into the stream of the id's next connection. What is held is bounded:
/// reading stops at the handshake's end (`TLSStreamReader`).
final class TLSHeldPushes: PushSink {
    private struct Held {
        let message: Message
        let client: ClientID
        let delivery: PushDelivery
    }

    private let sink: any PushSink
    /// nil once released.
    private let held = NIOLockedValueBox<[Held]?>([])

    init(_ sink: any PushSink) {
        self.sink = sink
    }

    func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome {
        held.withLockedValue { held in
            guard held != nil else { return sink.push(message, to: client, delivery: delivery) }
            held!.append(Held(message: message, client: client, delivery: delivery))
            return .sent
        }
    }

    /// Pushes what is held, in order, and everything from now on. What follows a refused push
    /// is dropped (a byte stream gets no hole): its cause is returned, for the stream to end.
    func release() -> DropCause? {
        held.withLockedValue { held in
            defer { held = nil }
            for waiting in held ?? [] {
                if case .dropped(let cause) = sink.push(waiting.message, to: waiting.client, delivery: waiting.delivery) { return cause }
            }
            return nil
        }
    }

    func isConnected(_ client: ClientID) -> Bool { sink.isConnected(client) }
    func isCongested(_ client: ClientID) -> Bool { sink.isCongested(client) }
    func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) { sink.whenWritable(client, body) }
}
