import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// SPEC §3 "One life for every id": an id named only over IPC expires like one whose socket
/// closed, so the state handlers keep for it (sockets, buffers) is released.
@Suite("Ids named only over IPC", .serialized, .timeLimit(.minutes(3)))
struct IdLifeTests {
    static let yaml = "limits:\n  clientGraceSeconds: 1\nroutes:\n  - route: stateful\n    handler: stateful\n"

    @Test func anIdNamedInAnInvocationExpiresAfterTheGracePeriod() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            for index in 0..<20 {
                let response = try await host.ipc().request(.POST, "/stateful?id=ipc-only-\(index)", body: ByteBuffer(string: "x"))
                #expect(response.status == .ok)
            }
            try await waitUntil { (0..<20).allSatisfy { host.client("ipc-only-\($0)") == nil } }
            // Each id held one push; it was released, counted, at expiry.
            #expect(host.host.directory.budget.snapshot.dropped["expired"] == 20)
            // Handlers are told once the id's lock is let go, just after it leaves the table.
            try await waitUntil { StatefulHandler.expired.withLock { expired in (0..<20).allSatisfy { expired.contains("ipc-only-\($0)") } } }
            #expect(host.host.directory.budget.usedBytes == 0)
        }
    }
}

extension IdLifeTests {
    /// Every id costs memory for its grace period whatever made it, and a client with the key
    /// made 3,900 a second by opening and closing sockets under new ids: the host held every
    /// one (77,476 in 20 s, +62 MB). Past `maxClients` a new id now takes the place of the id
    /// away the longest, which ends as at the end of its grace period.
    @Test func aNewIdPastMaxClientsTakesThePlaceOfTheIdAwayTheLongest() async throws {
        StatefulHandler.expired.withLock { $0.removeAll() }
        let yaml = "limits:\n  maxClients: 3\nroutes:\n  - route: stateful\n    handler: stateful\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            // Each id away with one push in its buffer, held-0 away the longest.
            for index in 0..<3 {
                #expect(try await host.ipc().request(.POST, "/stateful?id=held-\(index)", body: ByteBuffer(string: "x")).status == .ok)
            }
            // held-1 comes back and goes away again: now the newest away.
            let socket = try await host.connect(client: "held-1")
            _ = try await socket.nextMessage()
            try await socket.close()
            try await waitUntil { host.client("held-1")?.connected == false }

            #expect(try await host.ipc().request(.POST, "/stateful?id=new-0", body: ByteBuffer(string: "x")).status == .ok)
            #expect(host.client("held-0") == nil)
            #expect(StatefulHandler.expired.withLock { $0 } == ["held-0"], "handlers are told, as at the end of the grace period")
            #expect(host.host.directory.budget.snapshot.dropped["expired"] == 1, "its buffered push is dropped, counted")

            // A socket under a new id takes a place the same way.
            let churned = try await host.connect(client: "new-1")
            #expect(host.client("held-2") == nil && host.client("held-1") != nil)
            try await churned.close()
            let places = host.host.directory.places
            #expect(places.held == 3 && places.limit == 3 && places.evicted == 2 && places.refused == 0, "\(places)")
        }
    }

    /// With every id it holds connected, the host has no place to give: a new id is refused
    /// on every path (a handshake, an invocation, a fallback stream, a push), and ids held
    /// are served as before.
    @Test func aNewIdFindsNoPlaceWhenEveryIdHeldIsConnected() async throws {
        let yaml = "limits:\n  maxClients: 2\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let first = try await host.connect(client: "c-0")
            let second = try await host.connect(client: "c-1")

            #expect(try await RawTCPClient.handshakeStatus(port: host.port, path: host.path(client: "c-2")) == 503)
            let invocation = try await host.ipc().request(.POST, "/echo?id=c-2", body: ByteBuffer(string: "x"))
            #expect(invocation.status == .serviceUnavailable)
            #expect(String(buffer: invocation.body).contains("limits.maxClients"), "\(String(buffer: invocation.body))")
            let stream = try await host.ipc().request(.GET, "/internal.conduit.events?id=c-2")
            #expect(stream.status == .serviceUnavailable)
            #expect(host.host.directory.push(Message(headers: ["route": "p"]), to: ClientID("c-2")!, delivery: .reliable) == .dropped(.tooManyClients))
            #expect(host.client("c-2") == nil)
            let places = host.host.directory.places
            #expect(places.held == 2 && places.evicted == 0 && places.refused == 4, "\(places)")
            #expect(try await first.request(Message(headers: ["route": "echo"], payload: ByteBuffer(string: "still"))).payload == ByteBuffer(string: "still"))

            // Once an id is away, a new one takes its place.
            try await first.close()
            try await waitUntil { host.client("c-0")?.connected == false }
            let third = try await host.connect(client: "c-2")
            #expect(host.client("c-0") == nil)
            try await third.close()
            try await second.close()
        }
    }

    /// While paused no id expires, but the ids the pause sent away still give their places:
    /// a new id past the bound takes the place of the one away the longest.
    @Test func idsAwayWhilePausedStillGiveTheirPlaces() async throws {
        let yaml = "limits:\n  maxClients: 2\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let first = try await host.connect(client: "p-0")
            try await first.close()
            try await waitUntil { host.client("p-0")?.connected == false }
            _ = try await host.connect(client: "p-1")
            // The pause closes p-1's socket.
            #expect(try await host.ipc().request(.POST, "/internal.conduit.stop").status == .ok)
            try await waitUntil { host.client("p-1")?.connected == false }
            #expect(try await host.ipc().request(.POST, "/echo?id=p-2", body: ByteBuffer(string: "x")).status == .ok)
            #expect(host.client("p-0") == nil && host.client("p-1") != nil && host.client("p-2") != nil)
            #expect(try await host.ipc().request(.POST, "/echo?id=p-3", body: ByteBuffer(string: "x")).status == .ok)
            #expect(host.client("p-1") == nil, "the pause sent p-1 away before p-2 was named")
            #expect(host.host.directory.places.evicted == 2)
        }
    }
}
