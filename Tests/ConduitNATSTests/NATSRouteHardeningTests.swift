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

    /// A route with a wildcard token (`work.*`, `work.>`) matched `work.*` and was published
    /// as a wildcard subject; NATS refuses wildcards in a subject published to.
    @Test func aRouteWithAWildcardIsABadRequest() async throws {
        try await NATSServerProcess.run { server in
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests) { host in
                try await NATSRouteTests.routeIsUp(host)
                let client = try await host.connect(client: "wild")
                for route in ["work.*", "work.>", "work.a.*"] {
                    let reply = try await client.request(Message(headers: ["route": route, "token": "w"]))
                    #expect(reply.headers["error"] == "BadRequestError", "\(route): \(reply.headers) \(String(buffer: reply.payload))")
                }
            }
        }
    }

    /// A worker's `token` stayed on the reply to a request that used `seq`, and a client reads
    /// `token` first: the reply correlated to the worker's 999, not the request's 5.
    @Test func aWorkersTokenDoesNotReachTheReplyToASeqRequest() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await NATSRouteTests.worker(server)
            try await NATSClientTests.answerWithHeaders(on: "work.seq", with: worker) { _ in (["token": "999"], ByteBuffer(string: "answer")) }
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests) { host in
                try await NATSRouteTests.routeIsUp(host)
                let client = try await host.connect(client: "seq")
                try await client.send(Message(headers: ["route": "work.seq", "seq": "5"]))
                let reply = try await client.nextMessage(route: "work.seq")
                #expect(reply.headers["seq"] == "5" && reply.headers["token"] == nil, "\(reply.headers)")
                #expect(String(buffer: reply.payload) == "answer")
            }
            await worker.close()
        }
    }

    /// A timeout that is 0 ms as a timer, URLs no server is reached by, and subjects no request
    /// can go to passed `check`: every request then failed at once, or the route never
    /// connected.
    @Test(arguments: [
        ("timeoutSeconds: 0.0001", "'timeoutSeconds' must be at least 0.001"),
        ("url: \"nats://127.0.0.1:4222,127.0.0.1:4223\"", "is not a NATS URL"),
        ("url: \"nats://a b:4222\"", "is not a NATS URL"),
        // A subject no route can make valid: every request failed, after a clean check.
        ("subject: \"a b\"", "'subject' is not a NATS subject a request can go to"),
        ("subject: \"work.>\"", "'subject' is not a NATS subject a request can go to"),
    ])
    func unusableOptionsAreRefusedAtLoad(option: String, expected: String) async throws {
        let yaml = "routes:\n  - route: work.*\n    handler: nats\n    options:\n      \(option)\n"
        let error = await #expect(throws: ConfigurationError.self) {
            try await TestHost.run(yaml: yaml, catalog: .natsTests) { _ in }
        }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
    }
}
