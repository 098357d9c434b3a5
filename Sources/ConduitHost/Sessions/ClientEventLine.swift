import ConduitKit
import Foundation
import NIOCore

/// Client events told in the order the table went through them: each is put in line under
/// the table's lock and told after it, one at a time. Told by each thread after the lock, an
/// id's `.expired` (the sweep's) could reach handlers after the `.connected` of its next life,
/// begun meanwhile on another thread, and a handler that tracks ids (the NATS route's
/// subscription for an id's pushes) dropped an id that was connected.
final class ClientEventLine: @unchecked Sendable {
    // Every stored property is guarded by `condition`.
    private let condition = NSCondition()
    private var waiting = CircularBuffer<ClientEvent>()
    private var lined = 0
    private var told = 0
    private var teller: pthread_t?
    private let tell: @Sendable (ClientEvent) -> Void

    init(_ tell: @escaping @Sendable (ClientEvent) -> Void) {
        self.tell = tell
    }

    /// Under the table's lock.
    func enqueue(_ event: ClientEvent) {
        condition.lock()
        defer { condition.unlock() }
        waiting.append(event)
        lined += 1
    }

    /// After the table's lock: tells the events in line, unless another thread is telling
    /// them already (it tells these too). `untilTold`: returns only once they are told, here
    /// or there, so a socket's `.connected` comes before its first request is handled; only
    /// for a new life of an id, never on a path a push or a reply takes (a handler may hold a
    /// lock there that its `clientEvent`, told on the other thread, waits for). An event a
    /// `clientEvent` causes is told by the same thread, after that `clientEvent` returns.
    func tellWaiting(untilTold: Bool = false) {
        condition.lock()
        defer { condition.unlock() }
        let mine = lined
        while told < mine {
            if let teller {
                guard untilTold, pthread_equal(teller, pthread_self()) == 0 else { return }
                condition.wait()
                continue
            }
            teller = pthread_self()
            while let event = waiting.popFirst() {
                condition.unlock()
                tell(event)
                condition.lock()
                told += 1
            }
            teller = nil
            condition.broadcast()
        }
    }
}
