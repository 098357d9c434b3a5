import NIOCore
import Synchronization

/// A listener's open connections, at most `limit`. Past it, with `makingRoomFromUnproven`, the
/// oldest connection not yet `proven` (one that has not shown the key) is closed to make room;
/// otherwise, or when every one is proven, the new one is closed at once. Both are counted.
/// Kept so that stopping the listener ends them too (a connection never ends by itself).
/// At most `streamLimit` of them may be streams (`startStream`), which never end by
/// themselves: the other places stay for requests, which do.
package final class OpenChannels: Sendable {
    package let limit: Int
    package let streamLimit: Int
    private let makesRoomFromUnproven: Bool
    private let state = Mutex(State())

    private struct State {
        var open: [ObjectIdentifier: Entry] = [:]
        var nextOrder: UInt64 = 0
        var refused = 0
        var streams = 0
    }

    private struct Entry {
        let channel: any Channel
        let order: UInt64
        var proven = false
        var streaming = false
    }

    package init(limit: Int, makingRoomFromUnproven: Bool = false, streamLimit: Int? = nil) {
        self.limit = limit
        self.streamLimit = streamLimit ?? limit
        self.makesRoomFromUnproven = makingRoomFromUnproven
    }

    /// Holds `channel` until it closes; false (and counted) when `limit` are open and none can
    /// make room, and the caller closes it.
    package func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let (admitted, closing) = state.withLock { state -> (Bool, (any Channel)?) in
            var closing: (any Channel)?
            if state.open.count >= limit {
                state.refused += 1
                // A linear search, only while full: a flood's cost, not a client's.
                guard makesRoomFromUnproven, let oldest = state.open.filter({ !$0.value.proven }).min(by: { $0.value.order < $1.value.order }) else {
                    return (false, nil)
                }
                closing = state.open.removeValue(forKey: oldest.key)?.channel
            }
            state.open[id] = Entry(channel: channel, order: state.nextOrder)
            state.nextOrder += 1
            return (true, closing)
        }
        closing?.close(promise: nil)
        if admitted {
            channel.closeFuture.whenComplete { _ in
                self.state.withLock { state in
                    if state.open.removeValue(forKey: id)?.streaming == true { state.streams -= 1 }
                }
            }
        }
        return admitted
    }

    /// `channel` becomes a stream, unless `streamLimit` are streams already (false: the caller
    /// refuses the stream, and the connection stays a place for requests).
    package func startStream(_ channel: any Channel) -> Bool {
        state.withLock { state in
            let id = ObjectIdentifier(channel)
            guard let entry = state.open[id] else { return false }
            if entry.streaming { return true }
            guard state.streams < streamLimit else { return false }
            state.open[id]?.streaming = true
            state.streams += 1
            return true
        }
    }

    /// `channel` showed the key: it keeps its place from now on.
    package func prove(_ channel: any Channel) {
        state.withLock { $0.open[ObjectIdentifier(channel)]?.proven = true }
    }

    package var count: Int { state.withLock { $0.open.count } }

    /// Connections closed at once, or to make room, since the listener started.
    package var refused: Int { state.withLock { $0.refused } }

    /// Closes every open connection and waits until each has closed.
    package func closeAll() async {
        for closing in state.withLock({ $0.open.values.map { $0.channel.close() } }) {
            try? await closing.get()
        }
    }
}
