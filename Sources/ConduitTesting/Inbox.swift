import NIOConcurrencyHelpers
import NIOCore

/// An ordered, thread-safe queue that a channel handler fills synchronously and a test drains
/// with `next(timeout:)`: waits for an event, never sleeps.
final class Inbox<Element: Sendable>: Sendable {
    private struct State {
        var items = CircularBuffer<Element>()
        var waiter: (id: Int, continuation: CheckedContinuation<Element, any Error>)?
        var finished = false
        var nextWaiterID = 0
    }

    private let state = NIOLockedValueBox(State())
    private let timers: any EventLoop

    init(timers: any EventLoop) {
        self.timers = timers
    }

    func deliver(_ item: Element) {
        let waiter: CheckedContinuation<Element, any Error>? = state.withLockedValue { state in
            guard let waiter = state.waiter else {
                state.items.append(item)
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: item)
    }

    /// No more items will come; a waiting or later `next` throws `TestClientError.closed`.
    func finish() {
        let waiter = state.withLockedValue { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume(throwing: TestClientError.closed)
    }

    func next(timeout: TimeAmount) async throws -> Element {
        try await withCheckedThrowingContinuation { continuation in
            let id: Int? = state.withLockedValue { state in
                if let item = state.items.popFirst() {
                    continuation.resume(returning: item)
                    return nil
                }
                if state.finished {
                    continuation.resume(throwing: TestClientError.closed)
                    return nil
                }
                state.nextWaiterID += 1
                state.waiter = (state.nextWaiterID, continuation)
                return state.nextWaiterID
            }
            guard let id else { return }
            timers.scheduleTask(in: timeout) {
                let expired = self.state.withLockedValue { state -> CheckedContinuation<Element, any Error>? in
                    guard state.waiter?.id == id else { return nil }
                    defer { state.waiter = nil }
                    return state.waiter?.continuation
                }
                expired?.resume(throwing: TestClientError.timedOut)
            }
        }
    }
}

public enum TestClientError: Error, Equatable {
    /// Nothing arrived within the timeout.
    case timedOut
    /// The connection closed before anything (more) arrived.
    case closed
    /// The server answered the upgrade request without switching protocols.
    case handshakeRefused
    /// A close frame arrived where a message was expected.
    case closedByServer(code: UInt16, reason: String)
    /// A program the test needs is not installed.
    case missingTool(String)
}
