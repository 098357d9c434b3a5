import ConduitKit
import NIOConcurrencyHelpers

/// The streams running now, by client id and stream token, so that `ai.chat.abort`, an id
/// that expired and `stop()` can end them. A stream removes itself when it ends.
final class StreamRegistry: Sendable {
    /// A stream is its token's bytes (`ExactText`).
    struct Key: Hashable, Sendable {
        let client: ClientID
        let token: ExactText
    }

    private struct State {
        var streams: [Key: Task<Void, Never>] = [:]
        /// Streams cancelled because their id expired: nobody is left to tell how they ended.
        var expired: Set<Key> = []
        /// `abortAll` ran (the handler stopped): no stream starts any more.
        var stopped = false
    }

    private let state = NIOLockedValueBox(State())
    /// Streams running at once, at most.
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    enum Start {
        case started
        /// That stream is already running.
        case running
        /// `limit` streams are running.
        case full
        /// The handler stopped: a generate that reached it after its stop began (a reload
        /// swapping the table meanwhile) ran to its end, pushing from a handler no table held.
        case stopped
    }

    /// Runs `body` as the stream `key`, unless it is already running or `limit` streams are.
    func start(_ key: Key, _ body: @escaping @Sendable () async -> Void) -> Start {
        state.withLockedValue { state in
            guard !state.stopped else { return .stopped }
            guard state.streams[key] == nil else { return .running }
            guard state.streams.count < limit else { return .full }
            // Made under the lock, so the task's own removal below always finds it registered.
            state.streams[key] = Task {
                await body()
                self.state.withLockedValue { state in
                    state.streams[key] = nil
                    state.expired.remove(key)
                }
            }
            return .started
        }
    }

    /// Cancels the stream `key` and waits until it has sent its last message; false when
    /// no such stream runs.
    func abort(_ key: Key) async -> Bool {
        guard let task = state.withLockedValue({ $0.streams[key] }) else { return false }
        task.cancel()
        await task.value
        return true
    }

    /// Cancels every stream of `client` (its id expired) without waiting.
    func cancelAll(of client: ClientID) {
        state.withLockedValue { state in
            for (key, task) in state.streams where key.client == client {
                state.expired.insert(key)
                task.cancel()
            }
        }
    }

    /// `abortAll` ran: a stream's last message, refused, is not tried again (the stop waits).
    var isStopped: Bool { state.withLockedValue { $0.stopped } }

    /// The stream `key` was cancelled by its id's expiry: its last message would make the id
    /// anew, for another grace period, to hold a message nobody reads.
    func isExpired(_ key: Key) -> Bool {
        state.withLockedValue { $0.expired.contains(key) }
    }

    /// Cancels every stream and waits until all have ended; none starts after.
    func abortAll() async {
        let tasks = state.withLockedValue { state in
            state.stopped = true
            return Array(state.streams.values)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }
}
