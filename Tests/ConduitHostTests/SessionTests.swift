import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOWebSocket
import Testing

/// SPEC §2–§3: ids, replacement, pushes and their buffers, relays, slow readers.
@Suite("Sessions and pushes", .serialized, .timeLimit(.minutes(1)))
struct SessionTests {
    static let pusherYAML = """
        limits:
          pushBufferMessages: 100
        routes:
          - route: push
            handler: pusher
          - route: echo
            handler: echo
        """
    /// For a handshake held back on purpose: the 10 s default cut it in a loaded CI run (15 s),
    /// and the test read no 101.
    static let heldHandshakeYAML = pusherYAML.replacingOccurrences(of: "limits:\n", with: "limits:\n  handshakeTimeoutSeconds: 600\n")

    @Test func aSecondConnectionWithTheSameIdReplacesTheFirst() async throws {
        try await TestHost.run(yaml: Self.pusherYAML, catalog: .hostTests) { host in
            let first = try await host.connect(client: "dup")
            _ = try await first.request(.init(headers: ["route": "echo"]))
            let second = try await host.connect(client: "dup")
            let close = try await first.nextClose()
            #expect(close.code == 1000)
            #expect(close.reason == "replaced")
            // Pushes to the id now reach the new socket.
            try await second.send(["route": "push", "count": "1"])
            let messages = [try await second.nextMessage(), try await second.nextMessage()]
            #expect(messages.contains { $0.headers["route"] == "push" })
            #expect(EventLog.shared.all(for: "dup").contains(.replaced(.init("dup")!)))
        }
    }

    /// A connection whose handshake finishes after a later one's (its request held back, as
    /// the network does to one it is about to cut) does not replace the later socket: it is the
    /// one replaced. It did, and a client whose dead connection's late handshake told its live
    /// socket "replaced" did not reconnect (a replaced client doesn't), stuck away for good.
    @Test func aConnectionThatArrivedEarlierDoesNotReplaceALaterSocket() async throws {
        try await TestHost.run(yaml: Self.heldHandshakeYAML, catalog: .hostTests) { host in
            let early = try await RawTCPClient.connect(port: host.port)
            let request = "GET \(host.path(client: "late-handshake")) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            try await early.send(request)
            let later = try await host.connect(client: "late-handshake")
            _ = try await later.request(.init(headers: ["route": "echo"]))
            // The early one's handshake ends now.
            try await early.send("\r\n")
            let answer = String(buffer: try await early.readUntilClosed())
            #expect(answer.hasPrefix("HTTP/1.1 101") && answer.contains("replaced"), "\(answer)")
            let echoed = try await later.request(.init(headers: ["route": "echo"], payload: ByteBuffer(string: "still mine")))
            #expect(String(buffer: echoed.payload) == "still mine")
            #expect(host.client("late-handshake")?.connected == true)
        }
    }

    /// What the outrun socket sent right behind its handshake (in the same write) is not
    /// dispatched: it is refused at attach. Its close was only queued, and the frames SwiftNIO
    /// hands on with the upgrade were dispatched meanwhile, as a connection without resume, so a
    /// request the live socket had made already ran twice.
    @Test func framesBehindAnOutrunHandshakeAreNotDispatched() async throws {
        try await TestHost.run(yaml: Self.heldHandshakeYAML, catalog: .hostTests) { host in
            let early = try await RawTCPClient.connect(port: host.port)
            let request = "GET \(host.path(client: "outrun")) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            try await early.send(request)
            let later = try await host.connect(client: "outrun")
            _ = try await later.request(.init(headers: ["route": "echo"]))
            let echo = try Message(headers: ["route": "echo", "token": "t"], payload: ByteBuffer(string: "sent by the outrun socket")).encoded()
            // Masked with a zero key: the bytes are the message's own.
            try await early.send(Array("\r\n".utf8) + [0x82, 0x80 | UInt8(echo.readableBytes), 0, 0, 0, 0] + Array(echo.readableBytesView))
            let answer = String(buffer: try await early.readUntilClosed())
            #expect(answer.hasPrefix("HTTP/1.1 101") && answer.contains("replaced"), "\(answer)")
            #expect(!answer.contains("sent by the outrun socket"), "dispatched and answered: \(answer)")
        }
    }

    @Test func pushesToAnAbsentIdAreBufferedAndFlushedInOrderOnConnect() async throws {
        try await TestHost.run(yaml: Self.pusherYAML, catalog: .hostTests) { host in
            let sender = try await host.connect(client: "sender")
            _ = try await sender.request(.init(headers: ["route": "push", "to": "later", "count": "150"]))
            let later = try await host.connect(client: "later")
            // The buffer keeps the newest 100: n = 50…149, in order.
            for expected in 50..<150 {
                #expect(try await later.nextMessage().headers["n"] == "\(expected)")
            }
            _ = try await later.request(.init(headers: ["route": "echo", "token": "end"]))
        }
    }

    @Test func pushesMadeWhileConnectedArriveInOrder() async throws {
        try await TestHost.run(yaml: Self.pusherYAML, catalog: .hostTests) { host in
            let client = try await host.connect(client: "p")
            try await client.send(["route": "push", "count": "1000"], payload: [1, 2, 3])
            for expected in 0..<1000 {
                let message = try await client.nextMessage()
                #expect(message.headers["n"] == "\(expected)")
            }
            #expect(try await client.nextMessage().payload == ByteBuffer(string: "1000".asJSONData))
        }
    }

    @Test func relayAddsFromAndAnswersTokens() async throws {
        try await TestHost.run(yaml: Self.pusherYAML, catalog: .hostTests) { host in
            let alice = try await host.connect(client: "alice")
            let bob = try await host.connect(client: "bob")
            try await alice.send(["to": "bob", "kind": "note"], payload: Array("hi".utf8))
            let relayed = try await bob.nextMessage()
            #expect(relayed.headers == ["to": "bob", "kind": "note", "from": "alice"])
            #expect(String(buffer: relayed.payload) == "hi")
            let acknowledged = try await alice.request(.init(headers: ["to": "bob", "token": "9"]))
            #expect(acknowledged.headers == ["token": "9"])
            #expect(String(buffer: acknowledged.payload) == #"{"data":{"delivered":true}}"#)
            _ = try await bob.nextMessage()
            let missing = try await alice.request(.init(headers: ["to": "nobody", "token": "10"]))
            #expect(missing.headers["error"] == "NotFoundError")
            #expect(missing.headers["token"] == "10")
        }
    }

    @Test func aSlowReaderLosesTheOldestQueuedMessagesNotMemory() async throws {
        let yaml = "limits:\n  outboundQueueMessages: 8\n  outboundPolicy: drop-oldest\nroutes:\n  - route: push\n    handler: pusher\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "slow", receiveBufferBytes: 65536)
            try await client.pauseReading()
            try await client.send(["route": "push", "count": "400"], payload: [UInt8](repeating: 7, count: 60_000))
            try await waitUntil { host.client("slow")?.outboundDropped ?? 0 > 0 }
            try await client.resumeReading()
            var last = -1
            var received = 0
            while last < 399 {
                let message = try await client.nextMessage()
                guard let n = message.headers["n"].flatMap(Int.init) else { continue }
                #expect(n > last, "order kept")
                last = n
                received += 1
            }
            #expect(received < 400, "some were dropped: the queue is bounded")
            // Host-wide too, and it stays once the socket is gone (the status page's total
            // summed the listed ids' own, and fell when one went).
            let dropped = try #require(host.client("slow")?.outboundDropped)
            #expect(dropped == 400 - received)
            try await client.close()
            try await waitUntil { host.client("slow")?.connected == false }
            #expect(host.host.directory.budget.snapshot.outboundDropped == dropped)
        }
    }

    @Test func aSlowReaderIsClosedWith1008UnderTheClosePolicy() async throws {
        let yaml = "limits:\n  outboundQueueMessages: 8\n  outboundPolicy: close\nroutes:\n  - route: push\n    handler: pusher\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "slow2", receiveBufferBytes: 65536)
            try await client.pauseReading()
            try await client.send(["route": "push", "count": "400"], payload: [UInt8](repeating: 7, count: 60_000))
            // Closing detaches the socket from the id; the rest of the pushes are buffered.
            try await waitUntil { host.client("slow2")?.connected == false }
            try await client.resumeReading()
            // A reader that comes back after the close timeout (5 s; a loaded machine) finds
            // the connection closed without the frame.
            do { #expect(try await client.nextClose().code == 1008) } catch TestClientError.closed {}
            #expect(host.client("slow2")?.buffered ?? 0 > 0)
        }
    }
}

/// A hundred handshakes, each followed by a relay: past a minute on a machine loaded by the
/// rest of the suite.
@Suite("Relays right after a handshake", .timeLimit(.minutes(3)))
struct RelayAfterHandshakeTests {
    @Test func aRelayRightAfterTheTargetsHandshakeArrives() async throws {
        try await TestHost.run(yaml: SessionTests.pusherYAML, catalog: .hostTests) { host in
            let sender = try await host.connect(client: "eager-sender")
            for attempt in 0..<100 {
                // `connect` returns once the 101 is read: the id must be known from then on.
                let target = try await host.connect(client: "fresh-\(attempt)")
                let answer = try await sender.request(.init(headers: ["to": "fresh-\(attempt)", "token": "\(attempt)"]))
                #expect(answer.headers["error"] == nil, "attempt \(attempt): \(String(buffer: answer.payload))")
                #expect(try await target.nextMessage().headers["from"] == "eager-sender")
                try await target.close()
            }
        }
    }
}

extension String {
    var asJSONData: String { #"{"data":\#(self)}"# }
}

@Suite("Client lifecycle events", .serialized, .timeLimit(.minutes(1)))
struct ClientLifecycleTests {
    /// The grace period must outlast the reconnect on a loaded machine (a TLS test's 1 s did
    /// not, on CI, and this test's 5 s did not with the suite and two busy loops).
    @Test func anIdExpiresAfterTheGracePeriodUnlessItComesBack() async throws {
        let yaml = "limits:\n  clientGraceSeconds: 15\nroutes:\n  - route: push\n    handler: pusher\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let first = try await host.connect(client: "graceful")
            try await first.close()
            try await first.waitUntilClosed()
            try await waitUntil { EventLog.shared.all(for: "graceful").contains(.disconnected(.init("graceful")!)) }
            // Back within the grace period: no expiry.
            let second = try await host.connect(client: "graceful")
            try await second.close()
            try await second.waitUntilClosed()
            try await waitUntil(timeout: .seconds(30)) { EventLog.shared.all(for: "graceful").contains(.expired(.init("graceful")!)) }
            let events = EventLog.shared.all(for: "graceful")
            #expect(events == [.connected(.init("graceful")!), .disconnected(.init("graceful")!), .connected(.init("graceful")!),
                               .disconnected(.init("graceful")!), .expired(.init("graceful")!)])
        }
    }
}
