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

/// Resume (SPEC §9) over real sockets, one rule a test: positions, replay after a drop, a
/// replacement and a pause, acknowledgements, duplicate client positions, resets, the window's
/// bound, and the events stream continuing the same positions.
@Suite("Resume", .serialized, .timeLimit(.minutes(1)))
struct ResumeTests {
    static let tallyYAML = "routes:\n  - route: echo\n    handler: echo\n  - route: tally\n    handler: test.tally\n"

    @Test func aPlainConnectionSeesNoPositionsAndNoGreeting() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let socket = try await host.connect(client: "plain")
            let reply = try await socket.request(Message(headers: ["route": "echo", "token": "1"]))
            #expect(reply.headers.route == "echo")
            #expect(reply.headers["pos"] == nil)
            host.host.directory.push(numberedPush(1), to: ClientID("plain")!)
            let push = try await socket.nextMessage()
            #expect(push.headers["n"] == "1" && push.headers["pos"] == nil)
            #expect(host.client("plain")?.resume == nil)
        }
    }

    @Test func aFirstConnectIsAResetAndEveryMessageIsNumbered() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r1")
            #expect(greeting.headers["reset"] == "true")
            #expect(greeting.headers["resumed"] == "0" && greeting.headers["replayed"] == "0")
            #expect(greeting.headers["lost"] == "0" && greeting.headers["ack"] == "0")
            #expect(greeting.headers["pos"] == nil)
            #expect(!(greeting.headers["epoch"] ?? "").isEmpty)
            let reply = try await socket.request(Message(headers: ["route": "echo", "token": "a"]))
            #expect(reply.headers["pos"] == "1")
            host.host.directory.push(numberedPush(1), to: ClientID("r1")!)
            #expect(try await socket.nextMessage().headers["pos"] == "2")
            // A large push is split: every part has a position of its own.
            host.host.directory.push(numberedPush(2, payload: ByteBuffer(repeating: 1, count: WireLimits.maxPayloadBytes + 10)), to: ClientID("r1")!)
            let first = try await socket.nextMessage()
            let second = try await socket.nextMessage()
            #expect(first.headers.hasMore && first.headers["pos"] == "3")
            #expect(!second.headers.hasMore && second.headers["pos"] == "4")
            // A position a handler set is replaced by the host's, small message or large.
            for (n, size) in [(3, 10), (4, 5000)] {
                var own = numberedPush(n)
                own.headers.append("pos", "77")
                own.payload = ByteBuffer(repeating: 2, count: size)
                host.host.directory.push(own, to: ClientID("r1")!)
                let numbered = try await socket.nextMessage()
                #expect(numbered.headers.values(of: "pos") == ["\(n + 2)"] && numbered.headers["n"] == "\(n)")
            }
        }
    }

    /// A client may take `ack` from any message of the host (SPEC §9): one the host did not set
    /// (a handler's, or a relay's from a plain connection, where `ack` is an ordinary header)
    /// would tell it that requests were processed which were not.
    @Test func anAckTheHostDidNotSetNeverReachesAResumingClient() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let (socket, _) = try await Self.resume(host, id: "r13")
            for (n, size) in [(1, 10), (2, 5000), (3, WireLimits.maxPayloadBytes + 10)] {
                var own = numberedPush(n)
                own.headers.append("ack", "999")
                own.payload = ByteBuffer(repeating: 2, count: size)
                host.host.directory.push(own, to: ClientID("r13")!)
            }
            var received: [Message] = []
            for _ in 0..<4 { received.append(try await socket.nextMessage()) }
            #expect(received.map { $0.headers.values(of: "pos") } == [["1"], ["2"], ["3"], ["4"]])
            #expect(received.allSatisfy { $0.headers["ack"] == nil })
            let plain = try await host.connect(client: "plain-sender")
            try await plain.send(["to": "r13", "ack": "1000", "pos": "7", "kind": "note"])
            let relayed = try await socket.nextMessage()
            #expect(relayed.headers["kind"] == "note" && relayed.headers["from"] == "plain-sender")
            #expect(relayed.headers.values(of: "pos") == ["5"] && relayed.headers["ack"] == nil)
        }
    }

    @Test func whatWasNotAcknowledgedIsReplayedAfterADrop() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("r2")!
            let (socket, greeting) = try await Self.resume(host, id: "r2")
            let epoch = try #require(greeting.headers["epoch"])
            for n in 1...5 { host.host.directory.push(numberedPush(n), to: id) }
            for n in 1...5 { #expect(try await socket.nextMessage().headers["pos"] == "\(n)") }
            try await socket.send(["ack": "2"])
            try await waitUntil { host.client("r2")?.resume?.acknowledged == 2 }
            #expect(host.client("r2")?.resume?.windowMessages == 3)
            try await socket.close()
            try await socket.waitUntilClosed()

            // The client says it holds 3: 4 and 5 come again, with their positions, then live ones.
            let (again, resumed) = try await Self.resume(host, id: "r2", received: 3, epoch: epoch)
            #expect(resumed.headers["reset"] == nil && resumed.headers["epoch"] == epoch)
            #expect(resumed.headers["resumed"] == "3" && resumed.headers["replayed"] == "2" && resumed.headers["lost"] == "0")
            for n in 4...5 {
                let message = try await again.nextMessage()
                #expect(message.headers["pos"] == "\(n)" && message.headers["n"] == "\(n)")
            }
            host.host.directory.push(numberedPush(6), to: id)
            #expect(try await again.nextMessage().headers["pos"] == "6")
            #expect(host.client("r2")?.resume?.replayed == 2)
        }
    }

    /// `ack` on a request of the client's (beside its `pos`) acknowledges as a bare one does.
    @Test func anAckOnARequestReleasesWhatItCovers() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let (socket, _) = try await Self.resume(host, id: "r16")
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: ClientID("r16")!) }
            for _ in 1...3 { _ = try await socket.nextMessage() }
            #expect(host.client("r16")?.resume?.windowMessages == 3)
            let reply = try await socket.request(Message(headers: ["route": "echo", "token": "t", "pos": "1", "ack": "2"]))
            #expect(reply.headers["pos"] == "4")
            #expect(host.client("r16")?.resume?.acknowledged == 2)
            #expect(host.client("r16")?.resume?.windowMessages == 2, "3 and the reply")
        }
    }

    @Test func acknowledgedMessagesAreNotReplayed() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r3")
            let epoch = try #require(greeting.headers["epoch"])
            for n in 1...4 { host.host.directory.push(numberedPush(n), to: ClientID("r3")!) }
            for _ in 1...4 { _ = try await socket.nextMessage() }
            try await socket.send(["ack": "4"])
            try await waitUntil { host.client("r3")?.resume?.windowMessages == 0 }
            try await socket.close()
            let (again, resumed) = try await Self.resume(host, id: "r3", received: 4, epoch: epoch)
            #expect(resumed.headers["replayed"] == "0" && resumed.headers["lost"] == "0")
            // Stating less than was acknowledged: those positions are gone, counted as lost.
            try await again.close()
            let (_, behind) = try await Self.resume(host, id: "r3", received: 1, epoch: epoch)
            #expect(behind.headers["replayed"] == "0" && behind.headers["lost"] == "3")
        }
    }

    @Test func aClientPositionIsDispatchedOnceAndAcknowledged() async throws {
        try await TestHost.run(yaml: Self.tallyYAML, catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r4")
            let epoch = try #require(greeting.headers["epoch"])
            for (pos, n) in [(1, "x1"), (1, "x1"), (2, "x2"), (2, "x2"), (1, "x1")] {
                try await socket.send(["route": "tally", "token": n, "n": n, "pos": "\(pos)"])
            }
            // One acknowledgement per read: the five may arrive in more than one, so "1" may
            // come first; none carries a position.
            var ack = try await socket.nextMessage(route: "conduit.ack")
            while ack.headers["ack"] == "1" {
                #expect(ack.headers["pos"] == nil)
                ack = try await socket.nextMessage(route: "conduit.ack")
            }
            #expect(ack.headers["ack"] == "2" && ack.headers["pos"] == nil)
            // The acknowledgement follows dispatch; the handler may count a moment later, and
            // the last duplicate may still be on its way.
            try await waitUntil { DispatchTally.counts(of: "r4") == ["x1": 1, "x2": 1] }
            try await waitUntil { host.client("r4")?.resume?.duplicates == 3 }
            // The handler never sees `pos` or `ack`; the reply carries the host's own position.
            let reply = try await socket.nextMessage(route: "tally")
            #expect(reply.headers["pos"] == "1")
            try await socket.close()

            // After a reconnect the greeting says what was processed; sending again changes nothing.
            let (again, resumed) = try await Self.resume(host, id: "r4", received: 0, epoch: epoch)
            #expect(resumed.headers["ack"] == "2")
            try await again.send(["route": "tally", "token": "x2", "n": "x2", "pos": "2"])
            try await again.send(["route": "tally", "token": "x3", "n": "x3", "pos": "5"])
            _ = try await again.nextMessage(route: "conduit.ack")
            try await waitUntil { DispatchTally.counts(of: "r4")["x3"] == 1 }
            #expect(DispatchTally.counts(of: "r4") == ["x1": 1, "x2": 1, "x3": 1])
            #expect(host.client("r4")?.resume?.duplicates == 4)
        }
    }

    /// A `cancel` (SPEC §8) carries a position like a request (§9's fine print): processed
    /// once, acknowledged, and dropped as a duplicate when the client sends it again after a
    /// reconnect, with the request it cancelled.
    @Test func aCancelIsNumberedAndDeduplicatedLikeARequest() async throws {
        let yaml = "routes:\n  - route: silent\n    handler: silent\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r-cancel")
            let epoch = try #require(greeting.headers["epoch"])
            try await socket.send(["route": "silent", "token": "t1", "pos": "1"])
            try await socket.send(["cancel": "t1", "pos": "2"])
            let cancelled = try await socket.nextMessage(route: "silent")
            #expect(cancelled.headers["error"] == "CancelledError" && cancelled.headers["token"] == "t1")
            try await socket.close()

            // Nothing acknowledged by the client: the host replays what it sent, and says it
            // processed both client positions; the client sends both again all the same.
            let (again, resumed) = try await Self.resume(host, id: "r-cancel", received: 0, epoch: epoch)
            #expect(resumed.headers["ack"] == "2", "the cancel's position counts as processed: \(resumed.headers)")
            try await again.send(["route": "silent", "token": "t1", "pos": "1"])
            try await again.send(["cancel": "t1", "pos": "2"])
            try await again.send(["route": "echo", "token": "after", "pos": "3"])
            var before: [Message] = []
            while true {
                let message = try await again.nextMessage()
                if message.headers.route == "echo" { break }
                before.append(message)
            }
            let answers = before.filter { $0.headers.route == "silent" }
            #expect(answers.count == 1 && answers.first?.headers["pos"] == cancelled.headers["pos"], "only the replayed answer: \(answers.map(\.headers))")
            #expect(host.client("r-cancel")?.resume?.duplicates == 2)
        }
    }

    /// A request a resuming id's socket dispatched is cancelled by a `cancel` that comes on the
    /// id's next socket (the client sends what its old socket may not have carried): each
    /// socket had its own registry of cancellable requests, so the cancel was acknowledged and
    /// did nothing, and the work went on with no answer.
    @Test func aCancelOnTheIdsNextSocketCancelsTheRequestOfTheLast() async throws {
        let yaml = "routes:\n  - route: silent\n    handler: silent\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let (first, greeting) = try await Self.resume(host, id: "r-cancel-later")
            let epoch = try #require(greeting.headers["epoch"])
            try await first.send(["route": "silent", "token": "t1", "pos": "1"])
            try await waitUntil { SilentHandler.received.withLock { $0.contains("r-cancel-later") } }
            try await first.close()
            try await first.waitUntilClosed()

            let (again, resumed) = try await Self.resume(host, id: "r-cancel-later", received: 0, epoch: epoch)
            #expect(resumed.headers["ack"] == "1")
            try await again.send(["cancel": "t1", "pos": "2"])
            let answer = try await again.nextMessage(where: { $0.headers["token"] == "t1" })
            #expect(answer.headers["error"] == "CancelledError", "\(answer.headers)")
            try await waitUntil { SilentHandler.cancelled.withLock { $0.contains("r-cancel-later") } }
        }
    }

    /// SPEC §9's fine print: a bare `ack` is neither queued nor dispatched, and any payload it
    /// has is discarded (never a chunk of the next request); a message without `pos` on a
    /// resuming connection is dispatched without de-duplication.
    @Test func aBareAcksPayloadIsNoChunkAndAMessageWithoutPositionIsNotDeduplicated() async throws {
        try await TestHost.run(yaml: Self.tallyYAML, catalog: .ipcTests) { host in
            let (socket, _) = try await Self.resume(host, id: "r-bare")
            try await socket.send(["ack": "0"], payload: Array("stray".utf8))
            try await socket.send(["pos": "1"], payload: Array("ab".utf8))
            try await socket.send(["route": "echo", "token": "joined", "pos": "2"], payload: Array("cd".utf8))
            let joined = try await socket.nextMessage(route: "echo")
            #expect(String(buffer: joined.payload) == "abcd", "the bare ack's payload stays out of the request")
            for _ in 1...2 { try await socket.send(["route": "tally", "token": "np", "n": "np"]) }
            for _ in 1...2 { _ = try await socket.nextMessage(route: "tally") }
            #expect(DispatchTally.counts(of: "r-bare") == ["np": 2])
            #expect(host.client("r-bare")?.resume?.duplicates == 0)
        }
    }

    /// SPEC §1: a message without `route` that is an acknowledgement (`ack`) is no chunk, on
    /// any connection. On one that does not resume it was queued, and its payload went in front
    /// of the next request's: an echo of "B" came back "AAAB".
    @Test func aBareAckOnAPlainConnectionIsNoChunk() async throws {
        try await TestHost.run(yaml: Self.tallyYAML, catalog: .ipcTests) { host in
            let socket = try await host.connect(client: "plain-ack")
            try await socket.send(["ack": "5"], payload: Array("AAA".utf8))
            let echoed = try await socket.request(Message(headers: ["route": "echo", "token": "t"], payload: ByteBuffer(string: "B")))
            #expect(String(buffer: echoed.payload) == "B")
        }
    }

    /// SPEC §9's fine print: a relay to a resuming id whose socket is down is still
    /// `NotFoundError` (§3); the id's window does not take it, and the next socket is not sent it.
    @Test func aRelayToAResumingIdWithoutASocketIsNotFound() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let (away, greeting) = try await Self.resume(host, id: "r-away")
            let epoch = try #require(greeting.headers["epoch"])
            try await away.close()
            try await waitUntil { host.client("r-away")?.connected == false }
            let sender = try await host.connect(client: "relay-sender")
            let missing = try await sender.request(Message(headers: ["to": "r-away", "token": "rel", "kind": "note"]))
            #expect(missing.headers["error"] == "NotFoundError" && missing.headers["token"] == "rel")
            #expect(host.client("r-away")?.resume?.sent == 0)
            let (back, resumed) = try await Self.resume(host, id: "r-away", received: 0, epoch: epoch)
            #expect(resumed.headers["reset"] == nil && resumed.headers["replayed"] == "0")
            let next = try await back.request(Message(headers: ["route": "echo", "token": "after", "pos": "1"]))
            #expect(next.headers.route == "echo" && next.headers["pos"] == "1", "nothing came before the echo: \(next.headers)")
        }
    }

    /// The 32nd client position owes an acknowledgement: it goes with the reply that follows
    /// (SPEC §9: on any message the host sends), not as a `conduit.ack` frame of its own.
    @Test func theAcknowledgementGoesWithTheReplyThatFollows() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let (socket, _) = try await Self.resume(host, id: "r15")
            // All 32 in one write, so the 200 ms timer can't acknowledge part of them first.
            var frames: [UInt8] = []
            for n in 1...32 {
                let message = Array(buffer: try Message(headers: ["route": "echo", "token": "\(n)", "pos": "\(n)"]).encoded())
                // Masked with a zero key (any key is valid), so the payload is written as it is.
                frames += [0x82, 0x80 | UInt8(message.count), 0, 0, 0, 0] + message
            }
            try await socket.sendRaw(frames)
            var replies: [Message] = []
            for _ in 1...32 { replies.append(try await socket.nextMessage()) }
            #expect(replies.map(\.headers.route) == Array(repeating: "echo", count: 32), "no conduit.ack among them")
            #expect(replies.map { $0.headers["ack"] } == Array(repeating: nil, count: 31) + ["32"])
            #expect(replies.last?.headers.values(of: "pos") == ["32"])
        }
    }

    @Test func aChunkedRequestIsAcknowledgedOnlyWhenComplete() async throws {
        try await TestHost.run(yaml: Self.tallyYAML, catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r5")
            let epoch = try #require(greeting.headers["epoch"])
            try await socket.send(["route": "tally", "n": "c", "more": "true", "pos": "1"], payload: [1, 2])
            try await socket.send(["route": "tally", "token": "e", "n": "e", "digest": "", "pos": "2"])
            _ = try await socket.nextMessage()
            try await socket.close()
            // The first chunk is not acknowledged: the client sends the whole request again.
            let (again, resumed) = try await Self.resume(host, id: "r5", received: 0, epoch: epoch)
            #expect(resumed.headers["ack"] == "0")
            try await again.send(["route": "tally", "n": "c", "more": "true", "pos": "1"], payload: [1, 2])
            try await again.send(["route": "tally", "n": "e", "digest": "", "pos": "2"])
            try await again.send(["route": "tally", "token": "c", "n": "c", "pos": "3"], payload: [3])
            let reply = try await again.nextMessage(route: "tally")
            #expect(Array(reply.payload.readableBytesView) == [1, 2, 3])
            #expect(try await again.nextMessage(route: "conduit.ack").headers["ack"] == "3")
            #expect(DispatchTally.counts(of: "r5") == ["c": 1])
        }
    }

    @Test func anEpochThatDiffersOrAPositionNeverSentIsAReset() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r6")
            let epoch = try #require(greeting.headers["epoch"])
            host.host.directory.push(numberedPush(1), to: ClientID("r6")!)
            _ = try await socket.nextMessage()
            try await socket.close()
            let (other, wrongEpoch) = try await Self.resume(host, id: "r6", received: 1, epoch: "not-" + epoch)
            #expect(wrongEpoch.headers["reset"] == "true" && wrongEpoch.headers["epoch"] != epoch)
            #expect(wrongEpoch.headers["replayed"] == "0" && wrongEpoch.headers["ack"] == "0")
            host.host.directory.push(numberedPush(2), to: ClientID("r6")!)
            // What the other epoch never had acknowledged comes again first (ResumeCarryOverTests).
            let carried = try await other.nextMessage()
            #expect(carried.headers["n"] == "1" && carried.headers["pos"] == "1", "positions start again at 1")
            #expect(try await other.nextMessage().headers["pos"] == "2")
            try await other.close()
            let newEpoch = try #require(wrongEpoch.headers["epoch"])
            let (_, ahead) = try await Self.resume(host, id: "r6", received: 7, epoch: newEpoch)
            #expect(ahead.headers["reset"] == "true")
            #expect(host.client("r6")?.resume?.resets == 2)
        }
    }

    @Test func anExpiredIdIsAReset() async throws {
        let yaml = "limits:\n  clientGraceSeconds: 0.3\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r7")
            let epoch = try #require(greeting.headers["epoch"])
            try await socket.close()
            try await waitUntil { host.client("r7") == nil }
            let (_, resumed) = try await Self.resume(host, id: "r7", received: 0, epoch: epoch)
            #expect(resumed.headers["reset"] == "true")
        }
    }

    @Test func pastTheWindowTheLossIsCountedExactly() async throws {
        let yaml = "limits:\n  resumeWindowBytes: 65536\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let (socket, greeting) = try await Self.resume(host, id: "r8")
            let epoch = try #require(greeting.headers["epoch"])
            let total = 100
            for n in 1...total {
                host.host.directory.push(numberedPush(n, payload: ByteBuffer(repeating: UInt8(n), count: 2000)), to: ClientID("r8")!)
            }
            for _ in 1...total { _ = try await socket.nextMessage() }
            try await socket.close()
            let (again, resumed) = try await Self.resume(host, id: "r8", received: 0, epoch: epoch)
            let replayed = try #require(Int(resumed.headers["replayed"] ?? ""))
            let lost = try #require(Int(resumed.headers["lost"] ?? ""))
            #expect(replayed + lost == total)
            #expect(replayed > 10 && replayed * 2000 < 65536)
            for pos in (lost + 1)...total {
                let message = try await again.nextMessage()
                #expect(message.headers["pos"] == "\(pos)" && message.headers["n"] == "\(pos)")
            }
            #expect(host.client("r8")?.resume?.lost == lost)
        }
    }

    @Test func aReplacingSocketContinuesWhereTheFirstStopped() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("r9")!
            let (first, greeting) = try await Self.resume(host, id: "r9")
            let epoch = try #require(greeting.headers["epoch"])
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: id) }
            for _ in 1...3 { _ = try await first.nextMessage() }
            let (second, resumed) = try await Self.resume(host, id: "r9", received: 1, epoch: epoch)
            #expect(resumed.headers["replayed"] == "2")
            #expect(try await first.nextClose().reason == "replaced")
            var seen: [String] = []
            for n in 4...200 { host.host.directory.push(numberedPush(n), to: id) }
            for _ in 2...200 { seen.append(try await second.nextMessage().headers["pos"] ?? "") }
            #expect(seen == (2...200).map { "\($0)" })
        }
    }

    @Test func windowsSurviveAPause() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let ipc = host.ipc()
            let (socket, greeting) = try await Self.resume(host, id: "r10")
            let epoch = try #require(greeting.headers["epoch"])
            for n in 1...2 { host.host.directory.push(numberedPush(n), to: ClientID("r10")!) }
            _ = try await socket.nextMessage()
            _ = try await ipc.request(.POST, "/internal.conduit.stop")
            try await socket.waitUntilClosed()
            host.host.directory.push(numberedPush(3), to: ClientID("r10")!)
            let status = try await ipc.request(.POST, "/internal.conduit.start").decode(DataEnvelope<StatusBody>.self).data
            let port = try #require(status.port)
            let (again, resumed) = try await Self.resume(host, id: "r10", received: 1, epoch: epoch, port: port)
            #expect(resumed.headers["reset"] == nil)
            var positions: [String] = []
            for _ in 1...(3 - 1) { positions.append(try await again.nextMessage().headers["pos"] ?? "") }
            #expect(positions == ["2", "3"])
        }
    }

    @Test func theEventsStreamContinuesTheSamePositions() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("r11")!
            let (socket, greeting) = try await Self.resume(host, id: "r11")
            let epoch = try #require(greeting.headers["epoch"])
            for n in 1...2 { host.host.directory.push(numberedPush(n), to: id) }
            for _ in 1...2 { _ = try await socket.nextMessage() }
            try await socket.close()
            try await waitUntil { host.client("r11")?.connected == false }
            for n in 3...4 { host.host.directory.push(numberedPush(n), to: id) }

            var streamed: [Message] = []
            try await host.ipc().events(for: "r11", query: [("resume", "1"), ("epoch", epoch)]) { message in
                streamed.append(message)
                return streamed.count < 4
            }
            #expect(streamed.first?.headers.route == "conduit.resume" && streamed.first?.headers["replayed"] == "1")
            #expect(streamed.dropFirst().map { $0.headers["pos"] } == ["2", "3", "4"])
            // Back on a socket: the stream's positions are the client's.
            let (again, resumed) = try await Self.resume(host, id: "r11", received: 4, epoch: epoch)
            #expect(resumed.headers["replayed"] == "0" && resumed.headers["lost"] == "0")
            host.host.directory.push(numberedPush(5), to: id)
            #expect(try await again.nextMessage().headers["pos"] == "5")
        }
    }

    @Test func malformedResumeValuesAreRefusedClearly() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let refused = try await RawTCPClient.handshakeStatus(port: host.port, path: host.path(client: "r12") + "&resume=abc")
            #expect(refused == 400)
            // A position is digits only, on the URL as in a header.
            #expect(try await RawTCPClient.handshakeStatus(port: host.port, path: host.path(client: "r12") + "&resume=%2B5") == 400)
            let (socket, _) = try await Self.resume(host, id: "r12")
            try await socket.send(["route": "echo", "token": "t", "ack": "-1"])
            let error = try await socket.nextMessage()
            #expect(error.headers["error"] == "BadRequestError" && error.headers["token"] == "t")
            // A position that is not UTF-8 is refused like any such value, even with a good one after it.
            var broken = try Message(headers: Headers([("pos", "1"), ("route", "echo"), ("token", "u"), ("pos", "2")])).encoded()
            broken.setBytes([0xFF], at: broken.readerIndex + 1 + 1 + 3 + 2)
            try await socket.send(encoded: broken)
            let invalid = try await socket.nextMessage()
            #expect(invalid.headers["error"] == "BadRequestError")
            let reply = try await socket.request(Message(headers: ["route": "echo", "token": "ok"]))
            #expect(reply.headers["token"] == "ok", "the connection stays usable")
            #expect(reply.headers["pos"] == "3", "only the error and this reply took positions: nothing was echoed")

        }
    }

    /// Connects `id` resuming from `received` and returns the socket and its first message,
    /// which must be the greeting.
    static func resume(
        _ host: TestHost, id: String, received: UInt64 = 0, epoch: String? = nil, port: Int? = nil
    ) async throws -> (TestWebSocketClient, Message) {
        let path = host.path(client: id) + "&resume=\(received)" + (epoch.map { "&epoch=\($0)" } ?? "")
        let socket = try await TestWebSocketClient.connect(port: port ?? host.port, path: path)
        let greeting = try await socket.nextMessage()
        try #require(greeting.headers.route == "conduit.resume")
        return (socket, greeting)
    }
}

extension ResumeTests {
    /// A resuming id moves from a stalled events stream to a socket: the stream numbered more
    /// than its reader took (in the socket buffers), and most pushes still wait in the id's
    /// queue. The socket gets the numbered ones replayed, then the queue numbered after them:
    /// every push after the one it states, once and in order. (A stream numbers a push only
    /// while it is the id's receiver, under the directory's lock, so it can't number one after
    /// a socket's greeting.)
    @Test func aStalledStreamsNumberedAndQueuedPushesReachTheSocketOnce() async throws {
        // 3,000 pushes of 8 KiB: more than the socket buffers hold, so most wait in the id's
        // queue; the queue must hold them all (the default is 8 MiB). The window must hold
        // what the stream numbered: the socket buffers took 488 to 528 of them (4 MiB holds 509).
        let yaml = "limits:\n  pushBufferBytes: 33554432\n  resumeWindowBytes: 16777216\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("r13")!
            let total = 3000
            // Takes the greeting and one push, then stops reading.
            let reader = StalledEventsReader(host, id: "r13", query: [("resume", "0")], stallAfter: 2)
            try await waitUntil { reader.count >= 1 }
            let epoch = try #require(reader.messages[0].headers["epoch"])
            for n in 1...total {
                host.host.directory.push(numberedPush(n, payload: ByteBuffer(repeating: UInt8(truncatingIfNeeded: n), count: 8192)), to: id)
            }
            try await waitUntil { reader.count == 2 }
            let (socket, greeting) = try await Self.resume(host, id: "r13", received: 1, epoch: epoch)
            reader.resume()
            try await reader.task.value
            #expect(greeting.headers["reset"] == nil && greeting.headers["lost"] == "0")
            let fromStream = reader.messages.dropFirst().map { $0.headers["pos"] }
            #expect(fromStream == (1...fromStream.count).map { "\($0)" }, "the stream's share is a prefix, in order")

            var positions: [Int] = []
            var pushes: [Int] = []
            var damaged = 0
            while pushes.last != total {
                let message = try await socket.nextMessage()
                positions.append(Int(message.headers["pos"] ?? "") ?? -1)
                pushes.append(Int(message.headers["n"] ?? "") ?? -1)
                if message.payload != ByteBuffer(repeating: UInt8(truncatingIfNeeded: pushes.last!), count: 8192) { damaged += 1 }
            }
            #expect(positions == Array(2...total) && pushes == positions, "every push after the first, once and in order, under its own position")
            #expect(damaged == 0)
            print("stream to socket: \(fromStream.count) over the stream, \(greeting.headers["replayed"] ?? "?") replayed, \(positions.count) over the socket")
            try await socket.close()
        }
    }
}
