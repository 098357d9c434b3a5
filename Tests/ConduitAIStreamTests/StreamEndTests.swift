import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// How a stream ends when something else ends it: a cancel, a full budget, the id's expiry,
/// and how it is mounted (docs/handlers/ai.md).
// 300 streams cancelled at their end: 1 s alone, past 120 s in two loaded full runs.
@Suite("AI stream: its end", .timeLimit(.minutes(5)))
struct StreamEndTests {
    /// A cancel read after the generator's last token was answered `CancelledError`, and the
    /// stream then ended `complete` without `aborted`: two answers that disagree. Either the
    /// cancel came first (`CancelledError`, `aborted: true`) or it is ignored.
    @Test func aCancelAtTheEndIsAnsweredOnlyWhenTheStreamEndsAborted() async throws {
        try await TestHost.run(yaml: aiYAML(), catalog: .aiTests) { host in
            let client = try await host.connect()
            var cancelledCount = 0
            for n in 0..<300 {
                try await client.send(together: [
                    Message(headers: ["route": "ai.chat.generate", "token": "g\(n)", "prompt": "p", "maxTokens": "2"]),
                    Message(headers: ["cancel": "g\(n)"]),
                    // Answered after any answer to the cancel.
                    Message(headers: ["route": "ai.chat.abort", "stream": "none", "token": "after\(n)"]),
                ])
                var cancelled = false
                var last: Message?
                while true {
                    let message = try await client.nextMessage()
                    if message.headers["token"] == "after\(n)" { break }
                    if message.headers["error"] == "CancelledError" { cancelled = true }
                    if message.headers["complete"] == "true" { last = message }
                }
                if last == nil { last = try await client.nextMessage { $0.headers["complete"] == "true" } }
                #expect(cancelled == (last?.headers["aborted"] == "true"), "stream \(n): CancelledError \(cancelled), last \(last?.headers.description ?? "")")
                if cancelled { cancelledCount += 1 }
            }
            #expect(cancelledCount > 0, "no cancel came in time: the test tried nothing")
        }
    }

    /// The budget full, a token is refused and the stream ends with `UnavailableError`; that
    /// message was refused by the same full budget, and the client, back, waited for ever.
    @Test func aStreamEndedByTheFullBudgetStillSendsItsLastMessage() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\n  pushBufferMessages: 100000\n  ipcReplyTimeoutSeconds: 0.5\n" + aiYAML()
        try await TestHost.run(yaml: yaml, catalog: .aiTests) { host in
            // Started over IPC for an id with no socket: every token waits in its buffer.
            let ipc = IPCClient(port: host.endpoints.ipcPort!, key: host.sharedKey)
            let started = try await ipc.request(.POST, "/ai.chat.generate?id=away&token=long&prompt=p&maxTokens=100000")
            #expect(started.status == .gatewayTimeout, "no reply: the tokens are the answer")
            try await waitUntil { host.host.directory.budget.snapshot.dropped.values.reduce(0, +) > 0 }
            let back = try await host.connect(client: "away")
            var stream = ReceivedStream()
            try await back.read(into: &stream)
            #expect(stream.last?.headers["error"] == "UnavailableError", "\(stream.last?.headers.description ?? "")")
            #expect(stream.indices == Array(0...stream.tokens.count), "no gap")
        }
    }

    /// Its id expired, a stream was cancelled and pushed its last message to the id just
    /// removed: that made the id anew, for another grace period, holding one message.
    @Test func aStreamOfAnExpiredIdDoesNotMakeTheIdAgain() async throws {
        // Two tokens a second: none is due as the id expires (a token pushed in the moment
        // between the id's removal and its streams' cancel still makes it anew: not fixed).
        let trickle = "  - route: trickle.*\n    handler: ai\n    options: {backend: builtin, tokensPerSecond: 2}\n"
        let yaml = "limits:\n  clientGraceSeconds: 0.2\n" + aiYAML(extraRoutes: trickle)
        try await TestHost.run(yaml: yaml, catalog: .aiTests) { host in
            let client = try await host.connect(client: "gone")
            try await client.send(["route": "trickle.chat.generate", "token": "s", "prompt": "p"])
            // Two pushes to this life of the id (the next is due in 0.5 s, after its expiry).
            for _ in 0..<2 { _ = try await client.nextMessage() }
            try await client.close()
            // Until the id is gone, or is another: its pushes counted from 0 again.
            let most = Mutex(0)
            try await waitUntil {
                guard let id = host.client("gone") else { return true }
                return most.withLock { most in
                    defer { most = max(most, id.pushes) }
                    return id.pushes < most
                }
            }
            #expect(host.client("gone") == nil, "the id was made again: \(String(describing: host.client("gone")))")
            let back = (try? await waitUntil(timeout: .seconds(1)) { host.client("gone") != nil }) != nil
            #expect(!back, "the id was made again: \(String(describing: host.client("gone")))")
        }
    }

    /// An exact route ending in chat.generate mounts the generator; another is refused at load
    /// (one naming no operation loaded and answered every request `NotFoundError`; an exact
    /// chat.abort has no streams to abort).
    @Test func anExactRouteServesItsOperationOrIsRefused() async throws {
        let exact = "routes:\n  - route: ai.chat.generate\n    handler: ai\n    options: {backend: builtin, tokensPerSecond: 0, maxTokens: 4}\n"
        try await TestHost.run(yaml: exact, catalog: .aiTests) { host in
            let client = try await host.connect()
            let stream = try await client.generate(["route": "ai.chat.generate", "token": "x", "prompt": "rivers"])
            #expect(stream.tokens.count == 4)
        }
        for refused in ["ai.generate", "ai.chat.abort"] {
            let yaml = "routes:\n  - route: \(refused)\n    handler: ai\n"
            let error = await #expect(throws: (any Error).self) { try await TestHost.run(yaml: yaml, catalog: .aiTests) { _ in } }
            #expect("\(String(describing: error))".contains("must end in chat.generate"), "\(String(describing: error))")
        }
    }
}
