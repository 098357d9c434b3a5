import ConduitClient
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// The host's answers to requests the client gave up on are the client's own business
/// (docs/client-swift.md: "all later answers to a cancelled or timed-out request" are
/// swallowed), however many gave up at once.
@Suite("Client: answers to requests it gave up on", .timeLimit(.minutes(2)))
struct LateAnswerTests {
    /// 600 requests time out together; each timeout sends a cancel, and the host answers every
    /// one `CancelledError`. Only the newest 256 tokens were remembered: the answers to the
    /// oldest reached the receive handler as messages nobody asked for.
    @Test func answersToManyTimedOutRequestsAreSwallowed() async throws {
        try await TestHost.run(yaml: TestHost.clientYAML, catalog: .clientTests) { host in
            let conduit = host.client(id: "many-timeouts")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let count = 600
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<count {
                    group.addTask {
                        await #expect(throws: ConduitClientError.self) { try await conduit.request(route: "silent", timeout: .milliseconds(500)) }
                    }
                }
                try await group.waitForAll()
            }
            // Every cancel went out before this request, and the host answers them in order:
            // every CancelledError is in before the echo.
            _ = try await conduit.request(route: "echo")
            let leaked = recorder.messages.filter { $0.headers.correlation != nil }
            #expect(leaked.count == 0, "\(leaked.count) answers to timed-out requests reached the app, e.g. \(leaked.first?.headers.description ?? "")")
            conduit.close()
        }
    }
}
