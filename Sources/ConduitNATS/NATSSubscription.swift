import NIOCore
import Synchronization

/// A subscription made with `NATSClient.subscribe`; `unsubscribe` ends it.
public struct NATSSubscription: Sendable {
    let client: NATSClient
    let id: Int

    public func unsubscribe() {
        client.unsubscribe(id)
    }
}

/// A request made with the completion form of `NATSClient.request`.
public struct NATSPendingRequest: Sendable {
    let client: NATSClient
    let token: UInt64

    /// Completes the request with `NATSError.cancelled` unless it is over already.
    public func cancel() {
        client.finishRequest(token, with: .failure(.cancelled))
    }
}

/// Messages of one subscription as an async sequence, buffered in bytes: a consumer that
/// falls behind by more than the bound loses the newest messages, counted, instead of
/// growing the client's memory (the slow-consumer rule of NATS servers, on the client side).
public final class NATSMessages: AsyncSequence, Sendable {
    public typealias Element = NATSMessage

    private struct Buffer {
        var messages = CircularBuffer<NATSMessage>()
        var bytes = 0
        var waiter: CheckedContinuation<NATSMessage?, Never>?
        var isFinished = false
    }

    private let limitBytes: Int
    private let dropped: @Sendable () -> Void
    private let buffer = Mutex(Buffer())
    private let subscriptionBox = Mutex<NATSSubscription?>(nil)

    init(limitBytes: Int, dropped: @escaping @Sendable () -> Void) {
        self.limitBytes = limitBytes
        self.dropped = dropped
    }

    var subscription: NATSSubscription? {
        get { subscriptionBox.withLock { $0 } }
        set { subscriptionBox.withLock { $0 = newValue } }
    }

    /// Ends the subscription; the sequence ends after what is buffered.
    public func unsubscribe() {
        subscription?.unsubscribe()
        finish()
    }

    /// The sequence ends after what is buffered (its subscription ended, or its client closed).
    func finish() {
        let waiter = buffer.withLock { buffer in
            buffer.isFinished = true
            defer { buffer.waiter = nil }
            return buffer.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// What a buffered message costs: its payload, subject and headers, and a fixed overhead,
    /// so a flood of empty messages is bounded too.
    private static func cost(of message: NATSMessage) -> Int {
        128 + message.payload.readableBytes + message.subject.utf8.count + (message.headers.isEmpty ? 0 : message.headers.encodedBytes)
    }

    func offer(_ message: NATSMessage) {
        let size = Self.cost(of: message)
        let (waiter, kept) = buffer.withLock { buffer -> (CheckedContinuation<NATSMessage?, Never>?, Bool) in
            if buffer.isFinished { return (nil, true) }
            if let waiter = buffer.waiter {
                buffer.waiter = nil
                return (waiter, true)
            }
            guard buffer.bytes + size <= limitBytes || buffer.messages.isEmpty else { return (nil, false) }
            buffer.messages.append(message)
            buffer.bytes += size
            return (nil, true)
        }
        waiter?.resume(returning: message)
        if !kept { dropped() }
    }

    fileprivate func next() async -> NATSMessage? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = buffer.withLock { buffer -> NATSMessage?? in
                    if let message = buffer.messages.popFirst() {
                        buffer.bytes -= Self.cost(of: message)
                        return .some(message)
                    }
                    if buffer.isFinished || Task.isCancelled { return .some(nil) }
                    buffer.waiter = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = buffer.withLock { buffer in
                defer { buffer.waiter = nil }
                return buffer.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let messages: NATSMessages
        public mutating func next() async -> NATSMessage? { await messages.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(messages: self) }
}
