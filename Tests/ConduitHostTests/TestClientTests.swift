import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// The real-socket test client itself: replies matched by token, pushes taken by route.
@Suite("Test WebSocket client", .timeLimit(.minutes(1)))
struct TestClientTests {
    @Test func aReplyIsMatchedByTokenAndThePushesBeforeItAreKeptInOrder() async throws {
        let yaml = "routes:\n  - route: start\n    handler: pusher\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            // The handler pushes three messages, then replies: the reply comes last on the wire.
            let reply = try await client.request(Message(headers: ["route": "start", "token": "t", "count": "3"]))
            #expect(reply.headers["token"] == "t")
            #expect(String(buffer: reply.payload) == #"{"data":3}"#)
            for n in 0..<3 {
                let push = try await client.nextMessage(route: "push")
                #expect(push.headers["n"] == "\(n)")
            }
        }
    }
}
