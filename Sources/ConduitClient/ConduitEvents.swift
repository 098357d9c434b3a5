import ConduitWire
import NIOConcurrencyHelpers

/// A stream of a client's events (`Conduit.events()`), bounded in bytes: what it holds unread
/// takes at most its `maxBufferedBytes` (one message more than that only when it holds nothing
/// else). Past that an event is left out and counted, and the next one that fits comes after
/// `.eventsLeftOut(count:)`; the `receive` handler still gets every message. An unbounded
/// stream that nobody read held every message the host sent, for as long as the client ran.
public struct ConduitEvents: AsyncSequence, Sendable {
    public typealias Element = ConduitEvent

    let stream: AsyncStream<ConduitEvent>
    let subscriber: EventsSubscriber

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), subscriber: subscriber)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<ConduitEvent>.AsyncIterator
        let subscriber: EventsSubscriber

        public mutating func next() async -> ConduitEvent? {
            let event = await base.next()
            if let event { subscriber.taken(event) }
            return event
        }
    }
}

/// The producing side of one events stream: its continuation, and the bytes it holds unread.
final class EventsSubscriber: Sendable {
    /// What an event other than a message is counted as: a case, a close's reason, an error's text.
    static let smallEventBytes = 256

    let continuation: AsyncStream<ConduitEvent>.Continuation
    private let maxBufferedBytes: Int
    private let held = NIOLockedValueBox((bytes: 0, leftOut: 0))

    init(continuation: AsyncStream<ConduitEvent>.Continuation, maxBufferedBytes: Int) {
        self.continuation = continuation
        self.maxBufferedBytes = maxBufferedBytes
    }

    /// Yields `event` if it fits. Called under the client's lock, so events keep their order.
    func yield(_ event: ConduitEvent) {
        let size = Self.bytes(of: event)
        let leftOutBefore = held.withLockedValue { held -> Int? in
            guard held.bytes == 0 || held.bytes + size <= maxBufferedBytes else {
                held.leftOut += 1
                return nil
            }
            held.bytes += size
            defer { held.leftOut = 0 }
            return held.leftOut
        }
        guard let leftOutBefore else { return }
        if leftOutBefore > 0 { continuation.yield(.eventsLeftOut(count: leftOutBefore)) }
        continuation.yield(event)
    }

    func taken(_ event: ConduitEvent) {
        let size = Self.bytes(of: event)
        held.withLockedValue { $0.bytes -= size }
    }

    private static func bytes(of event: ConduitEvent) -> Int {
        switch event {
        case .message(let message): message.encodedSize
        // Yielded only ahead of an event that fit, so never more of them than of those.
        case .eventsLeftOut: 0
        case .open, .error, .close, .reopen, .resumeReset, .lost: smallEventBytes
        }
    }
}
