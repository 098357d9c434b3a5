import ConduitKit
import NIOConcurrencyHelpers

/// The streams running now, by client id and stream token, so that `ai.chat.abort`, an id
/// that expired and `stop()` can end them. A stream removes itself when it ends.
final class StreamRegistry: Sendable {
    struct Key: Hashable, Sendable {
        let client: ClientID
        let token: String
    }

    private let streams = NIOLockedValueBox<[Key: Task<Void, Never>]>([:])
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
    }

    /// Runs `body` as the stream `key`, unless it is already running or `limit` streams are.
    func start(_ key: Key, _ body: @escaping @Sendable () async -> Void) -> Start {
        streams.withLockedValue { streams in
            guard streams[key] == nil else { return .running }
            guard streams.count < limit else { return .full }
            // Made under the lock, so the task's own removal below always finds it registered.
            streams[key] = Task {
                await body()
                self.streams.withLockedValue { _ = $0.removeValue(forKey: key) }
            }
            return .started
        }
    }

    /// Cancels the stream `key` and waits until it has sent its last message; false when
    /// no such stream runs.
    func abort(_ key: Key) async -> Bool {
        guard let task = streams.withLockedValue({ $0[key] }) else { return false }
        task.cancel()
        await task.value
        return true
    }

    /// Cancels every stream of `client` (its id expired) without waiting.
    func cancelAll(of client: ClientID) {
        streams.withLockedValue { streams in
            for (key, task) in streams where key.client == client { task.cancel() }
        }
    }

    /// Cancels every stream and waits until all have ended.
    func abortAll() async {
        let tasks = streams.withLockedValue { Array($0.values) }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }
}
