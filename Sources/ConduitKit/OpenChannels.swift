import NIOCore
import Synchronization

/// A listener's open connections, at most `limit`: one past it is closed at once and counted.
/// Kept so that stopping the listener ends them too (a connection never ends by itself).
package final class OpenChannels: Sendable {
    package let limit: Int
    private let state = Mutex<(open: [ObjectIdentifier: any Channel], refused: Int)>(([:], 0))

    package init(limit: Int) {
        self.limit = limit
    }

    /// Holds `channel` until it closes; false (and counted) when `limit` are open, and the
    /// caller closes it.
    package func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let admitted = state.withLock { state in
            guard state.open.count < limit else {
                state.refused += 1
                return false
            }
            state.open[id] = channel
            return true
        }
        if admitted { channel.closeFuture.whenComplete { _ in _ = self.state.withLock { $0.open.removeValue(forKey: id) } } }
        return admitted
    }

    package var count: Int { state.withLock { $0.open.count } }

    /// Connections closed at once since the listener started.
    package var refused: Int { state.withLock { $0.refused } }

    /// Closes every open connection and waits until each has closed.
    package func closeAll() async {
        for closing in state.withLock({ $0.open.values.map { $0.close() } }) {
            try? await closing.get()
        }
    }
}
