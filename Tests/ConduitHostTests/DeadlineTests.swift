import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Synchronization
import Testing

/// SPEC §8: a handler that hangs never holds a request's answer past its deadline, and what a
/// handler still runs is cancelled when the handler stops.
@Suite("Handler deadlines", .serialized, .timeLimit(.minutes(1)))
struct DeadlineTests {
    static let yaml = "routes:\n  - route: slow\n    handler: slow\n  - route: echo\n    handler: echo\n"

    @Test func aDeadlineAnswersOnTimeWhateverTheBodyDoes() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "deadline")
            let reply = try await client.request(Message(headers: ["route": "slow", "token": "stubborn-1", "mode": "stubborn"]))
            #expect(reply.headers["error"] == "TimeoutError")
            let finished = SlowHandler.finished.withLock { $0.contains("stubborn-1") }
            #expect(!finished, "the answer came before the body (which ignores cancellation for 15 s) ended")
        }
    }

    /// An echo's reply under the token of a request still running marked that token answered,
    /// and the running request could no longer be cancelled (SPEC §8): its work ran to the end.
    @Test func anotherRepliesUnderTheSameTokenLeaveARunningRequestCancellable() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "shared-token")
            try await client.send(["route": "slow", "token": "shared-1"])
            try await waitUntil { host.host.registry.lookup("slow")?.tasks.count == 1 }
            let echo = try await client.request(Message(headers: ["route": "echo", "token": "shared-1"], payload: Array("same token".utf8)))
            #expect(echo.headers["error"] == nil && echo.headers.route == "echo")
            try await client.send(["cancel": "shared-1"])
            let cancelled = try await client.nextMessage()
            #expect(cancelled.headers["error"] == "CancelledError" && cancelled.headers["token"] == "shared-1", "\(cancelled.headers)")
            try await waitUntil { SlowHandler.cancelled.withLock { $0.contains("shared-1") } }
        }
    }

    @Test func stoppingAHandlerCancelsItsRunningRequests() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "patient")
            try await client.send(["route": "slow", "token": "patient-1"])
            try await waitUntil { host.host.registry.lookup("slow")?.tasks.count == 1 }
            // A reload that removes the route stops its handler.
            try "routes:\n  - route: echo\n    handler: echo\n".write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            try await host.host.reload()
            try await waitUntil { SlowHandler.cancelled.withLock { $0.contains("patient-1") } }
            let reply = try await client.nextMessage()
            #expect(reply.headers["token"] == "patient-1")
            #expect(reply.headers["error"] != nil, "answered once, as cancelled")
        }
    }
}

@Suite("Requests answered from tasks, per connection", .serialized, .timeLimit(.minutes(1)))
struct InFlightTests {
    static let yaml = """
        limits:
          maxRequestsInFlight: 4
          requestTimeoutSeconds: 4
        routes:
          - route: slow
            handler: slow
        """

    @Test func aConnectionCantPileUpSlowRequestsAndEachIsAnsweredByTheTimeout() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "piler")
            // In one write: the fifth lands while the four hold their places, however loaded the machine.
            try await client.send(together: (0..<5).map { Message(headers: ["route": "slow", "token": "pile-\($0)"]) })
            var replies: [String: Message] = [:]
            while replies.count < 5 {
                let reply = try await client.nextMessage()
                replies[reply.headers["token"] ?? ""] = reply
            }
            #expect(replies["pile-4"]?.headers["error"] == "UnavailableError", "the fifth is refused at once")
            // The four admitted ones get the WebSocket path's reply timeout (none of their own).
            #expect((0..<4).allSatisfy { replies["pile-\($0)"]?.headers["error"] == "TimeoutError" })
            // Free again once the cancelled bodies have ended, which comes just after their answers.
            try await waitUntil {
                let again = try await client.request(Message(headers: ["route": "slow", "token": "after", "mode": "stubborn"]))
                return again.headers["error"] == "TimeoutError"
            }
        }
    }

    /// A body that goes on after its request was answered (at its deadline, or cancelled by
    /// the client) still holds the request: its place and its bytes of the budget are given
    /// back when it ends, not with the answer. Given back with the answer, a TLS connect
    /// waiting on its handshake held a 16 MiB payload outside the budget and its place, and a
    /// client could start one after another.
    @Test(arguments: ["deadline", "cancel"])
    func aBodyThatOutlivesItsAnswerHoldsItsPlaceAndBytesUntilItEnds(_ answeredBy: String) async throws {
        let yaml = "limits:\n  maxRequestsInFlight: 1\nroutes:\n  - route: slow\n    handler: slow\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "outliving")
            let token = "outlives-\(answeredBy)"
            // The cancel in the same write: dispatched right after the request, before its 200 ms
            // deadline, however loaded the machine.
            let request = Message(headers: ["route": "slow", "token": token, "mode": "stubborn"], payload: ByteBuffer(repeating: 1, count: 50_000))
            try await client.send(together: answeredBy == "cancel" ? [request, Message(headers: ["cancel": token])] : [request])
            let answer = try await client.nextMessage()
            #expect(answer.headers["error"] == (answeredBy == "cancel" ? "CancelledError" : "TimeoutError"))
            #expect(!SlowHandler.finished.withLock { $0.contains(token) }, "the body (15 s) still runs")
            #expect(host.host.directory.budget.usedBytes >= 50_000, "the running body's request is in the budget")
            let refused = try await client.request(Message(headers: ["route": "slow", "token": "next-\(answeredBy)"]))
            #expect(refused.headers["error"] == "UnavailableError", "the one place is still taken")
        }
    }
}
