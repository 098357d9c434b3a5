import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// Replies a handler makes after the request's socket closed (`GatedHandler` answers when the
/// test says): they go to the id like any message for it, in order, and within its lifetime.
@Suite("Late replies", .serialized, .timeLimit(.minutes(1)))
struct LateReplyTests {
    static let yaml = "routes:\n  - route: gated\n    handler: gated\n"

    /// A reply its handler makes after the socket closed is newer than the pushes buffered
    /// meanwhile: it reaches the next socket after them (it was put in front of them).
    @Test func aReplyMadeWhileAwayComesAfterThePushesBufferedBeforeIt() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            let id = ClientID("w3")!
            let (socket, greeting) = try await ResumeTests.resume(host, id: "w3")
            let epoch = try #require(greeting.headers["epoch"])
            try await socket.send(["route": "gated", "token": "late", "pos": "1"])
            try await waitUntil { GatedHandler.isWaiting(token: "late") }
            try await socket.close()
            try await socket.waitUntilClosed()
            try await waitUntil { host.client("w3")?.connected == false }
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: id) }
            GatedHandler.release(token: "late")
            try await waitUntil { host.client("w3")?.buffered == 4 }

            let (again, _) = try await ResumeTests.resume(host, id: "w3", epoch: epoch)
            var order: [String] = []
            for _ in 1...4 {
                let message = try await again.nextMessage()
                order.append(message.headers["n"] ?? message.headers["token"] ?? "?")
            }
            #expect(order == ["1", "2", "3", "late"])
        }
    }

    /// A reply for an id that expired meanwhile waits one grace period, like a push to an id
    /// not heard of, and is then dropped and counted: it was kept, and its bytes reserved,
    /// until the host stopped. (Waiting to see it buffered missed its half second when a
    /// loaded machine stalled the test; the count can't be missed.)
    @Test func aReplyForAnExpiredIdLivesOneGracePeriod() async throws {
        let yaml = "limits:\n  clientGraceSeconds: 0.5\n" + Self.yaml
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let socket = try await host.connect(client: "gone")
            try await socket.send(["route": "gated", "token": "after-expiry"])
            try await waitUntil { GatedHandler.isWaiting(token: "after-expiry") }
            try await socket.close()
            try await waitUntil { host.client("gone") == nil }
            GatedHandler.release(token: "after-expiry")
            try await waitUntil { host.host.directory.budget.snapshot.dropped[DropCause.expired.rawValue] == 1 }
            try await waitUntil { host.client("gone") == nil }
            #expect(host.host.directory.budget.usedBytes == 0)
        }
    }
}
