import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Synchronization
import Testing

/// SPEC §8 cancellation over a real socket: `cancel: <token>` on a message without `route`.
@Suite("Cancellation", .timeLimit(.minutes(1)))
struct CancellationTests {
    static let yaml = """
        routes:
          - route: echo
            handler: echo
          - route: slow
            handler: slow
          - route: watch
            handler: watcher
        """

    @Test func aTaskIsCancelledAndTheRequestAnsweredOnceWithCancelledError() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.send(["route": "slow", "token": "cancel-task"])
            try await client.send(["cancel": "cancel-task"])
            let reply = try await client.nextMessage()
            #expect(reply.headers == ["route": "slow", "token": "cancel-task", "error": "CancelledError"])
            try await waitUntil { SlowHandler.cancelled.withLock { $0.contains("cancel-task") } }
            // Once: the body's own cancellation error is not sent as a second reply.
            try await Self.expectNextIsEcho(client)
        }
    }

    @Test func aSynchronousHandlersCallbackFiresAndItsLaterReplyIsNotSent() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            // In one write: read and dispatched together, the cancel before the handler's own
            // answer (2 s), however loaded the machine.
            try await client.send(together: [Message(headers: ["route": "watch", "token": "cancel-sync"]), Message(headers: ["cancel": "cancel-sync"])])
            let reply = try await client.nextMessage()
            #expect(reply.headers["error"] == "CancelledError")
            #expect(reply.headers["token"] == "cancel-sync")
            #expect(WatchingHandler.cancelled.withLock { $0.contains("cancel-sync") })
            try await Task.sleep(for: .milliseconds(500))  // past the handler's late reply
            try await Self.expectNextIsEcho(client)
            // Cancelling again, or after the end, is ignored.
            try await client.send(["cancel": "cancel-sync"])
            try await Self.expectNextIsEcho(client)
        }
    }

    /// A handler that removed its registration when cancelled and answered after that: the
    /// registration's end forgot the cancel, and the answer went out after `CancelledError`.
    @Test func aHandlerThatRemovesItsRegistrationOnCancelIsStillAnsweredOnce() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.send(together: [
                Message(headers: ["route": "watch", "token": "removed", "removesOnCancel": "yes"]), Message(headers: ["cancel": "removed"]),
            ])
            let reply = try await client.nextMessage()
            #expect(reply.headers["error"] == "CancelledError" && reply.headers["token"] == "removed", "\(reply.headers)")
            try await Task.sleep(for: .milliseconds(500))  // past the handler's late reply
            try await Self.expectNextIsEcho(client)
        }
    }

    /// Registrations a handler let go of without removing them (`onCancel`'s result discarded)
    /// stayed after their requests were answered: past 4,096 on a connection, no request of it
    /// could be cancelled. A registration ends with its request's answer.
    @Test func registrationsEndWithTheirAnswers() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            let count = 4_200
            // In one write: 4,200 sends awaited one by one took a minute in a loaded full run.
            try await client.send(together: (0..<count).map { Message(headers: ["route": "watch", "token": "w\($0)", "answersAfter": "1"]) })
            var answered = 0
            while answered < count {
                if try await client.nextMessage(timeout: .seconds(30)).headers["late"] == "true" { answered += 1 }
            }
            try await client.send(together: [Message(headers: ["route": "slow", "token": "after-many"]), Message(headers: ["cancel": "after-many"])])
            let reply = try await client.nextMessage(timeout: .seconds(10))
            #expect(reply.headers["error"] == "CancelledError" && reply.headers["token"] == "after-many", "\(reply.headers)")
        }
    }

    /// A handler's first part (more to come) marked the request answered: a cancel after it
    /// was ignored, and the whole reply came at the handler's own time. Held by the host,
    /// nothing of it had reached the client.
    @Test func aCancelAfterAHeldFirstPartStillAnswersTheRequest() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            // Uncancelled, it would answer after a minute: however loaded the machine, the cancel comes first.
            try await client.send(["route": "watch", "token": "parted", "firstPart": "yes", "answersAfter": "60000"])
            try await Self.expectNextIsEcho(client)  // the handler has run and sent its part
            try await client.send(["cancel": "parted"])
            let reply = try await client.nextMessage()
            #expect(reply.headers == ["route": "watch", "token": "parted", "error": "CancelledError"])
            try await Task.sleep(for: .milliseconds(500))  // past the handler's late reply
            try await Self.expectNextIsEcho(client)
        }
    }

    /// Tokens are their bytes: `K` and `\u{212A}` (KELVIN SIGN) are equal as Swift compares
    /// strings, and a cancel of the one stopped the request of the other, answered
    /// `CancelledError` under the cancel's token: the request itself was never answered.
    @Test func aCancelStopsTheRequestWithItsTokensBytesOnly() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            // In one write: the cancel comes after the handler registered its callback and
            // before its answer (2 s), however loaded the machine (CI once stalled past a fence).
            try await client.send(together: [Message(headers: ["route": "watch", "token": "K"]), Message(headers: ["cancel": "\u{212A}"])])
            let reply = try await client.nextMessage(timeout: .seconds(10))
            #expect(reply.headers["token"] == "K" && reply.headers["late"] == "true" && reply.headers["error"] == nil, "\(reply.headers)")
            #expect(!WatchingHandler.cancelled.withLock { $0.contains("K") })
        }
    }

    @Test func anUnknownTokenIsIgnoredAndTheCancelIsNeverQueuedAsAChunk() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.send(["cancel": "never-sent"], payload: Array("zz".utf8))
            let reply = try await client.request(Message(headers: ["route": "echo", "token": "e"], payload: Array("abc".utf8)))
            #expect(String(buffer: reply.payload) == "abc", "not prefixed with the cancel's payload")
        }
    }

    @Test func anotherClientCannotCancelARequest() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let owner = try await host.connect(client: "owner")
            let other = try await host.connect(client: "other")
            try await owner.send(["route": "watch", "token": "mine"])
            try await other.send(["cancel": "mine"])
            let reply = try await owner.nextMessage()
            #expect(reply.headers["late"] == "true", "answered by the handler, not cancelled")
            #expect(!WatchingHandler.cancelled.withLock { $0.contains("mine") })
        }
    }

    /// A request that reuses the token of a cancelled one still ending is answered at once with an error saying so: replies under that token are
    /// not sent until the cancelled request ends, and such a request was never answered.
    @Test func aTokenOfACancelledRequestStillEndingIsRefusedNotLeftUnanswered() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            // The watcher's work goes on for 30 s after its cancel. In one write, the cancel
            // comes before its own answer (2 s) however loaded the machine (CI once stalled past it).
            try await client.send(together: [
                Message(headers: ["route": "watch", "token": "reused", "endsAfterCancel": "30000"]), Message(headers: ["cancel": "reused"]),
            ])
            let cancelled = try await client.nextMessage()
            #expect(cancelled.headers["error"] == "CancelledError")
            try await client.send(["route": "echo", "token": "reused"], payload: Array("again".utf8))
            let refused = try await client.nextMessage()
            #expect(refused.headers["token"] == "reused" && refused.headers["error"] == "BadRequestError", "\(refused.headers)")
            #expect(String(buffer: refused.payload).contains("cancelled"))
            try await Self.expectNextIsEcho(client)
        }
    }

    /// The next message is the reply to an echo sent now: nothing else was queued before it.
    /// SPEC §8: a cancel cancels "that client's" request. One that an id's socket sent runs on
    /// after a new socket of the id replaced it (its answer goes to the id): a cancel on the new
    /// socket, where the client sends it again, was ignored there (each socket had its own
    /// registry of cancellable requests; only a resuming id's were shared), and the work went on.
    @Test func aCancelOnTheNextSocketOfAnIdStopsTheRequestOfTheReplacedOne() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let first = try await host.connect(client: "replaced-cancel")
            try await first.send(["route": "slow", "token": "outlives-its-socket"])
            try await Self.expectNextIsEcho(first)  // the slow request runs
            let second = try await host.connect(client: "replaced-cancel")
            try await first.waitUntilClosed()
            try await second.send(["cancel": "outlives-its-socket"])
            let reply = try await second.nextMessage(where: { $0.headers["token"] == "outlives-its-socket" })
            #expect(reply.headers == ["route": "slow", "token": "outlives-its-socket", "error": "CancelledError"])
            try await waitUntil { SlowHandler.cancelled.withLock { $0.contains("outlives-its-socket") } }
            // Once: cancelling again is ignored.
            try await second.send(["cancel": "outlives-its-socket"])
            try await Self.expectNextIsEcho(second)
        }
    }

    static func expectNextIsEcho(_ client: TestWebSocketClient) async throws {
        try await client.send(["route": "echo", "token": "fence"])
        let next = try await client.nextMessage()
        #expect(next.headers["token"] == "fence", "unexpected: \(next.headers)")
    }
}
