import ConduitClient
import ConduitHost
import ConduitKit
import ConduitNATS
import ConduitNATSHandler
import ConduitTesting
import ConduitWire
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Two hosts sharing client ids through a real nats-server (SPEC §10 "Several hosts").
@Suite(.serialized) struct NATSClusterTests {
    static func yaml(_ server: NATSServerProcess, name: String) -> String {
        """
        server:
          cluster:
            nats: \(server.url)
            name: \(name)
        routes:
          - route: work.*
            handler: nats
            options:
              url: \(server.url)
        """
    }

    /// Runs two clustered hosts, A and B.
    static func withTwoHosts(_ server: NATSServerProcess, _ body: @Sendable (TestHost, TestHost) async throws -> Void) async throws {
        try await TestHost.run(yaml: yaml(server, name: "a"), catalog: .natsTests, cluster: NATSClusterLink.factory) { a in
            try await TestHost.run(yaml: yaml(server, name: "b"), catalog: .natsTests, cluster: NATSClusterLink.factory) { b in
                try await body(a, b)
            }
        }
    }

    /// Relays until the other host has subscribed for the recipient (it does so when the id
    /// connects, asynchronously); returns the accepted answer.
    static func relayOnceHeld(from sender: TestWebSocketClient, to id: String, payload: String) async throws -> Message {
        let answer = Mutex<Message?>(nil)
        try await waitUntil(timeout: .seconds(20)) {
            let reply = try await sender.request(Message(headers: ["to": id, "token": "r\(Int.random(in: 0...1_000_000))"], payload: ByteBuffer(string: payload)))
            guard reply.headers["error"] == nil else { return false }
            answer.withLock { $0 = reply }
            return true
        }
        return try #require(answer.withLock { $0 })
    }

    @Test func aRelayReachesAClientOnTheOtherHostAndBackWithFromKept() async throws {
        try await NATSServerProcess.run { server in
            try await Self.withTwoHosts(server) { a, b in
                let alice = try await a.connect(client: "alice")
                let bob = try await b.connect(client: "bob")
                let delivered = try await Self.relayOnceHeld(from: alice, to: "bob", payload: "hello bob")
                #expect(String(buffer: delivered.payload).contains("\"delivered\":true"))
                let atBob = try await bob.nextMessage()
                #expect(atBob.headers["from"] == "alice")
                #expect(atBob.headers["to"] == "bob")
                #expect(String(buffer: atBob.payload) == "hello bob")

                // Relays keep the order they were made in, across hosts too.
                for n in 0..<200 { try await alice.send(Message(headers: ["to": "bob", "n": "\(n)"])) }
                // (A relay of the first, retried when its answer was late, may come again first.)
                for n in 0..<200 { #expect(try await bob.nextMessage { $0.headers["n"] != nil }.headers["n"] == "\(n)") }

                _ = try await Self.relayOnceHeld(from: bob, to: "alice", payload: "hello alice")
                // (A loaded run once answered one of the 200 after the relay's 5 s: its error,
                // with no token, comes to alice too.)
                let atAlice = try await alice.nextMessage { $0.headers["from"] != nil }
                #expect(atAlice.headers["from"] == "bob")
                #expect(String(buffer: atAlice.payload) == "hello alice")

                let ipc = IPCEndpoint(port: try #require(a.endpoints.ipcPort), sharedKey: a.sharedKey)
                let cluster = try #require(try await ipc.diagnostics().cluster)
                #expect(cluster["nats.host"] == .text("a"))
                #expect(cluster["nats.state"] == .text("connected"))
            }
        }
    }

    @Test func anIdNoHostHoldsIsNotFound() async throws {
        try await NATSServerProcess.run { server in
            try await Self.withTwoHosts(server) { a, _ in
                let alice = try await a.connect(client: "alice")
                try await waitUntil(timeout: .seconds(20)) {
                    let reply = try await alice.request(Message(headers: ["to": "nobody", "token": "x"]))
                    // Until A's cluster link is connected the answer is UnavailableError.
                    return reply.headers["error"] == "NotFoundError"
                }
                let reply = try await alice.request(Message(headers: ["to": "nobody", "token": "y"]))
                #expect(String(buffer: reply.payload).contains("no open socket on any host"))
            }
        }
    }

    /// A holder that does not answer in time: the relay may have been delivered, and the sender
    /// is told so. It was told no NATS worker had answered, the `nats` route's wording.
    @Test func aRelayWhoseHolderIsSilentIsUnavailableAndSaysItMayHaveArrived() async throws {
        try await NATSServerProcess.run { server in
            var options = try NATSClientOptions(url: server.url, name: "silent holder")
            options.initialReconnectDelay = .milliseconds(20)
            let silent = NATSClient(options: options, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
            try await silent.connect()
            let heard = Mutex(0)
            _ = try silent.subscribe(HeldClientPushes.subject(for: ClientID("quiet")!)) { _ in heard.withLock { $0 += 1 } }
            try await silent.flush()
            try await TestHost.run(yaml: Self.yaml(server, name: "a"), catalog: .natsTests, cluster: NATSClusterLink.factory) { a in
                let alice = try await a.connect(client: "alice")
                try await waitUntil(timeout: .seconds(20)) {
                    let reply = try await alice.request(Message(headers: ["to": "quiet", "token": "r\(Int.random(in: 0...1_000_000))"]))
                    // Until A's cluster link is connected the answer is UnavailableError too.
                    return String(buffer: reply.payload).contains("did not say")
                }
                let reply = try await alice.request(Message(headers: ["to": "quiet", "token": "last"]))
                #expect(reply.headers["error"] == "UnavailableError")
                #expect(String(buffer: reply.payload).contains("the host holding client 'quiet' did not say within 5.0 seconds whether it took the relay; it may have"))
                #expect(heard.withLock { $0 } >= 2)
            }
            await silent.close()
        }
    }

    /// A relay to an id this host holds without a socket (in grace) goes to the cluster, whose
    /// request reaches this host's own subscription for the id too. That one buffered the
    /// relay and answered `delivered`, where a relay to an id with no open socket is
    /// `NotFoundError` (SPEC §3, §9); it answers "no socket" now.
    @Test func aRelayToAnIdInGraceOnThisHostIsNotFound() async throws {
        try await NATSServerProcess.run { server in
            try await Self.withTwoHosts(server) { a, b in
                let alice = try await a.connect(client: "alice")
                let bob = try await a.connect(client: "bob")
                let carol = try await b.connect(client: "carol")
                // Host A's subscription for bob is live: B's relay reaches him through it.
                _ = try await Self.relayOnceHeld(from: carol, to: "bob", payload: "from B")
                try await bob.close()
                try await waitUntil { a.client("bob")?.connected == false }
                let reply = try await alice.request(Message(headers: ["to": "bob", "token": "t"], payload: ByteBuffer(string: "while away")))
                #expect(reply.headers["error"] == "NotFoundError", "\(reply.headers) \(String(buffer: reply.payload))")
                #expect(a.client("bob")?.buffered == 0, "nothing was kept for him")
            }
        }
    }

    /// An id that left this host (held here in its grace period) and connected to another:
    /// this host answered a relay to it itself, `NotFoundError`, while the id had a socket in
    /// the cluster (SPEC §10: a relay to an id held by another host reaches it through NATS).
    @Test func aRelayToAnIdThatMovedToAnotherHostReachesIt() async throws {
        try await NATSServerProcess.run { server in
            try await Self.withTwoHosts(server) { a, b in
                let alice = try await a.connect(client: "alice")
                let bob = try await a.connect(client: "bob")
                try await bob.close()
                try await waitUntil { a.client("bob")?.connected == false }
                let moved = try await b.connect(client: "bob")
                let relayed = try await Self.relayOnceHeld(from: alice, to: "bob", payload: "found you")
                #expect(String(buffer: relayed.payload).contains("\"delivered\":true"))
                let atB = try await moved.nextMessage()
                #expect(String(buffer: atB.payload) == "found you" && atB.headers["from"] == "alice", "\(atB.headers)")
                #expect(a.client("bob")?.buffered == 0, "nothing was kept for him on A")
            }
        }
    }

    /// The same from another host: the holder took the relay into the id's buffer and answered
    /// it accepted, so the sender was told `delivered: true` for a client with no open socket.
    @Test func aRelayFromAnotherHostToAnIdInGraceIsNotFound() async throws {
        try await NATSServerProcess.run { server in
            try await Self.withTwoHosts(server) { a, b in
                let alicia = try await a.connect(client: "alicia")
                let bobby = try await b.connect(client: "bobby")
                _ = try await Self.relayOnceHeld(from: alicia, to: "bobby", payload: "while here")
                _ = try await bobby.nextMessage()
                try await bobby.close()
                try await waitUntil { b.client("bobby")?.connected == false }
                let reply = try await alicia.request(Message(headers: ["to": "bobby", "token": "t"], payload: ByteBuffer(string: "while away")))
                #expect(reply.headers["error"] == "NotFoundError", "\(reply.headers) \(String(buffer: reply.payload))")
                #expect(b.client("bobby")?.buffered == 0, "nothing was kept for him")
                let back = try await b.connect(client: "bobby")
                let relayed = try await Self.relayOnceHeld(from: alicia, to: "bobby", payload: "back")
                #expect(String(buffer: relayed.payload).contains("\"delivered\":true"))
                let atBobby = try await back.nextMessage()
                #expect(String(buffer: atBobby.payload) == "back" && atBobby.headers["conduit-relay"] == nil, "\(atBobby.headers)")
            }
        }
    }

    @Test func anExpiredIdIsReleasedByItsHost() async throws {
        try await NATSServerProcess.run { server in
            let yamlB = Self.yaml(server, name: "b") + "\nlimits:\n  clientGraceSeconds: 0.2\n"
            try await TestHost.run(yaml: Self.yaml(server, name: "a"), catalog: .natsTests, cluster: NATSClusterLink.factory) { a in
                try await TestHost.run(yaml: yamlB, catalog: .natsTests, cluster: NATSClusterLink.factory) { b in
                    let alice = try await a.connect(client: "alice")
                    let bob = try await b.connect(client: "bob")
                    _ = try await Self.relayOnceHeld(from: alice, to: "bob", payload: "1")
                    _ = try await bob.nextMessage()
                    try await bob.close()
                    try await waitUntil { b.client("bob") == nil }
                    try await waitUntil(timeout: .seconds(20)) {
                        try await alice.request(Message(headers: ["to": "bob", "token": "gone"])).headers["error"] == "NotFoundError"
                    }
                }
            }
        }
    }

    @Test func clusterSettingsAreCheckedAtLoad() throws {
        let loader = ConfigurationLoader(environment: [:])
        let routes = "routes:\n  - route: echo\n    handler: echo\n"
        #expect(throws: ConfigurationError.self) { try loader.load(yaml: "server:\n  cluster:\n    nats: nats://x\n" + routes, file: "t") }
        #expect(throws: ConfigurationError.self) { try loader.load(yaml: "server:\n  cluster:\n    nats: nats://x\n    name: a\n    extra: 1\n" + routes, file: "t") }
        let loaded = try loader.load(yaml: "server:\n  cluster:\n    nats: nats://x:1\n    name: a\n" + routes, file: "t")
        #expect(loaded.settings.cluster == ClusterSettings(nats: "nats://x:1", name: "a"))
    }
}
