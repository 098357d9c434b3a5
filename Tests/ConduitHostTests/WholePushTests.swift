import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

@Suite("Pushes are whole messages", .timeLimit(.minutes(1)))
struct WholePushTests {
    /// SPEC §3: no client receives parts of two messages joined as one. A handler's push that
    /// carried `more: true` reached the client as it was, which held it as a first part and
    /// joined the reply to it. A push is always a whole message: the host takes `more` off it.
    @Test func aPushMarkedMoreIsNotJoinedToTheNextMessage() async throws {
        try await TestHost.run(yaml: "routes:\n  - route: farewell\n    handler: farewell\n", catalog: .hostTests) { host in
            let client = try await host.connect(client: "noted")
            try await client.send(["route": "farewell", "note": "push", "token": "t"])
            let push = try await client.nextJoinedMessage()
            #expect(push.headers.route == "farewell.note" && String(buffer: push.payload) == "push", "\(push.headers) \(String(buffer: push.payload))")
            let reply = try await client.nextJoinedMessage()
            #expect(reply.headers["token"] == "t" && String(buffer: reply.payload) == "reply")
            try await client.close()
        }
    }
}
