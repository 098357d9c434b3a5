import ConduitClient
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers

/// Reads an id's events stream, but stops after its first `stallAfter` messages until
/// `resume()`: the host's writes back up, so later pushes wait in the id's queue.
struct StalledEventsReader {
    private let received = NIOLockedValueBox<[Message]>([])
    let task: Task<Void, any Error>
    private let gate: AsyncStream<Void>.Continuation

    init(_ host: TestHost, id: String, query: [(String, String)] = [], stallAfter: Int) {
        let (opened, gate) = AsyncStream<Void>.makeStream()
        self.gate = gate
        let received = received
        task = Task {
            try await host.ipc().events(for: id, query: query) { message in
                let count = received.withLockedValue { list in
                    list.append(message)
                    return list.count
                }
                if count == stallAfter { for await _ in opened { break } }
                return true
            }
        }
    }

    /// What it has read so far.
    var messages: [Message] { received.withLockedValue { $0 } }
    var count: Int { received.withLockedValue { $0.count } }

    /// Reads on, until the stream ends.
    func resume() {
        gate.yield()
    }
}
