import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// Handlers are told of client events from the host's own paths, never from inside a push
/// they are making: a handler that pushes when told (a farewell on `.expired`), or that holds
/// its lock while pushing and takes it when told, must not take the host down.
@Suite("Client events never re-enter a handler's push", .serialized, .timeLimit(.minutes(1)))
struct ClientEventReentryTests {
    /// With the table full, a new id evicted the id away the longest and told handlers
    /// `.expired` inside that call; a farewell push to it made it new again, which evicted the
    /// next id away, whose farewell evicted the first again: the stack overflowed (SIGSEGV).
    /// A push now never takes a place from an id the host holds: it is dropped, counted.
    @Test func aFarewellPushOnExpiryDoesNotEvictIdsInACycle() async throws {
        let yaml = "limits:\n  maxClients: 2\nroutes:\n  - route: farewell\n    handler: farewell\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            for id in ["cycle-a", "cycle-b"] {
                let socket = try await host.connect(client: id)
                try await socket.close()
                try await waitUntil { host.client(id)?.connected == false }
            }
            let newcomer = try await host.connect(client: "cycle-c")
            try await waitUntil { FarewellHandler.seen(.expired(ClientID("cycle-a")!)) }
            let reply = try await newcomer.request(Message(headers: ["route": "farewell"]))
            #expect(reply.payload == ByteBuffer(string: "{\"data\":0}"))
            #expect(host.client("cycle-a") == nil && host.client("cycle-b") != nil)
            #expect(host.host.directory.places.evicted == 1)
            #expect(host.host.directory.budget.snapshot.dropped["too-many-clients"] == 1, "the farewell found no place")
            try await newcomer.close()
        }
    }

    /// Under `outboundPolicy: close` a push past a slow socket's bound closes it, and the
    /// handlers were told `.disconnected` inside that push: a handler holding its lock then
    /// took it again (a crash in debug builds, its event loop hung in release ones).
    @Test func aSocketClosedByAPushIsToldDisconnectedOutsideThePush() async throws {
        let yaml = "limits:\n  outboundQueueMessages: 8\n  outboundPolicy: close\nroutes:\n  - route: farewell\n    handler: farewell\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "slow-farewell", receiveBufferBytes: 65536)
            try await client.pauseReading()
            try await client.send(["route": "farewell", "count": "400"], payload: [UInt8](repeating: 7, count: 60_000))
            try await waitUntil { host.client("slow-farewell")?.connected == false }
            try await waitUntil { FarewellHandler.seen(.disconnected(ClientID("slow-farewell")!)) }
            try await client.resumeReading()
            // The close frame, unless the host gave up on it first: a client that reads nothing
            // for the close timeout (5 s; a loaded machine took that long to get here) never
            // takes it.
            do {
                #expect(try await client.nextClose().code == 1008)
            } catch TestClientError.closed {}
            // The host still serves.
            let other = try await host.connect(client: "after-farewell")
            #expect(try await other.request(Message(headers: ["route": "farewell"])).payload == ByteBuffer(string: "{\"data\":0}"))
            try await other.close()
        }
    }
}
