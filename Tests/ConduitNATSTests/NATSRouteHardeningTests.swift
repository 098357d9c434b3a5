import ConduitHost
import ConduitKit
import ConduitNATS
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// What reaches NATS from a client, and what reaches a client from NATS, checked at the edge.
@Suite(.serialized) struct NATSRouteHardeningTests {
    /// A request route of 5,000 bytes matched `work.*` and became the subject of an `HPUB`
    /// line longer than nats-server's control line (4,096): the server answered `-ERR` and
    /// closed the connection, and every other client's request on the route failed with it.
    @Test func aSubjectTooLongForNATSIsABadRequestAndTheConnectionStays() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await NATSRouteTests.worker(server)
            try await NATSClientTests.answer(on: "work.upper", with: worker) { ByteBuffer(string: String(buffer: $0.payload).uppercased()) }
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests) { host in
                try await NATSRouteTests.routeIsUp(host)
                let client = try await host.connect(client: "long-route")
                let long = try await client.request(Message(headers: ["route": "work." + String(repeating: "a", count: 5_000), "token": "long"]))
                #expect(long.headers["error"] == "BadRequestError", "\(long.headers) \(String(buffer: long.payload))")
                let next = try await client.request(Message(headers: ["route": "work.upper", "token": "next"], payload: ByteBuffer(string: "still")))
                #expect(next.headers["error"] == nil, "\(String(buffer: next.payload))")
                #expect(String(buffer: next.payload) == "STILL")
            }
            await worker.close()
        }
    }

    /// `more: true` from a worker (a push, or a reply's headers) reached the client as it was:
    /// the client held the message as the first part of one and joined it to whatever came
    /// next (SPEC §3: never parts of two messages joined as one). A NATS message is whole.
    @Test func moreFromAWorkerDoesNotReachTheClient() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await NATSRouteTests.worker(server)
            try await NATSClientTests.answerWithHeaders(on: "work.parted", with: worker) { _ in (["more": "true"], ByteBuffer(string: "reply")) }
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests) { host in
                try await NATSRouteTests.routeIsUp(host)
                let client = try await NATSRouteTests.connectReachable("parted", to: host, from: worker)
                try worker.publish("conduit.push.parted", headers: ["route": "news", "more": "true"], payload: ByteBuffer(string: "push"))
                let push = try await client.nextMessage(route: "news")
                #expect(push.headers["more"] == nil && String(buffer: push.payload) == "push")
                let reply = try await client.request(Message(headers: ["route": "work.parted", "token": "r"]))
                #expect(reply.headers["more"] == nil && String(buffer: reply.payload) == "reply")
            }
            await worker.close()
        }
    }
}
