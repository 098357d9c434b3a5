import Synchronization

/// One wait, woken once by whichever of several callers comes first (the host saying an id is
/// writable, a cancellation, a timer); a wake before the wait begins is kept.
package final class Wakeup: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<Void, Never>?, woken: Bool)>((nil, false))

    package init() {}

    package func wait(_ continuation: CheckedContinuation<Void, Never>) {
        let wokenAlready = state.withLock { state in
            if state.woken { return true }
            state.continuation = continuation
            return false
        }
        if wokenAlready { continuation.resume() }
    }

    package func wake() {
        let continuation = state.withLock { state in
            state.woken = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }
}
