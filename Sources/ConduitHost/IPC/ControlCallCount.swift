import Synchronization

/// The control calls running or waiting for the control plane's queue, bounded: a call waits
/// behind a stop (up to the close timeout) or a reload (up to a handler's start limit), and
/// each holds its memory there, closed connection or not, so a caller with the key could
/// queue them without end.
final class ControlCallCount: Sendable {
    static let limit = 64
    private let count = Atomic<Int>(0)

    /// Counts a call in; false, and nothing counted, when `limit` are in already.
    func enter() -> Bool {
        guard count.add(1, ordering: .relaxed).newValue > Self.limit else { return true }
        leave()
        return false
    }

    func leave() {
        count.subtract(1, ordering: .relaxed)
    }
}
