@testable import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The Swift client with `resume: true` (SPEC §9): numbered requests and pushes cross pauses
/// of the socket server (sockets closed, the port changed) and the fallback stream between,
/// and the application sees every push once, in order and intact (some are large: split in
/// parts), every request dispatched once. The pause test's sizes from `CONDUIT_PAUSES`,
/// `CONDUIT_PAUSES_PUSHES` and `CONDUIT_PAUSES_REQUESTS` (the long run, docs/resume.md).
@Suite("Client: resume", .serialized, .timeLimit(.minutes(2)))
struct ResumeClientTests {
    static let yaml = TestHost.clientYAML + "  - route: tally\n    handler: test.tally\n"

    /// A closed client with resume refuses at once, as one without does: `send` kept the message
    /// (true) and `request` waited out its timeout.
    @Test func aClosedClientRefusesAtOnce() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let conduit = host.client(id: "closed-resumer", resume: true)
            try await conduit.connect()
            _ = try await conduit.request(route: "tally", headers: ["n": "1"])
            conduit.close()
            #expect(try conduit.send(["route": "tally", "n": "2"]) == false)
            let refused = await #expect(throws: ConduitClientError.self) { try await conduit.request(route: "tally", headers: ["n": "3"], timeout: .seconds(20)) }
            #expect(refused?.code == .closed)
        }
    }

    @Test func everyPushOnceInOrderAndEveryRequestOnceAcrossPauses() async throws {
        let pushes = try longRunSize("CONDUIT_PAUSES_PUSHES", default: 600)
        let requests = try longRunSize("CONDUIT_PAUSES_REQUESTS", default: 150)
        let pauses = try longRunSize("CONDUIT_PAUSES", default: 4)
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let id = ClientID("resumer")!
            let conduit = host.client(id: "resumer", resume: true)
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let pusher = Task {
                for n in 1...pushes {
                    host.host.directory.push(numberedPush(n, payload: Self.pushPayload(n)), to: id)
                    if n % 20 == 0 { try await Task.sleep(for: .milliseconds(5)) }
                }
            }
            let requester = Task {
                for n in 1...requests {
                    let payload = n % 30 == 0 ? patternedBytes(n, count: 100_000) : ByteBuffer(string: "\(n)")
                    let reply = try await conduit.request(route: "tally", headers: ["n": "\(n)"], payload: payload)
                    #expect(reply.headers["n"] == "\(n)" && reply.payload == payload, "request \(n)")
                }
            }
            let ipc = try #require(conduit.ipc)
            for _ in 0..<pauses {
                try await Task.sleep(for: .milliseconds(40))
                try await ipc.stop()
                try await Task.sleep(for: .milliseconds(60))
                try await ipc.start()
            }
            try await pusher.value
            do { try await requester.value } catch {
                // Once in a loaded full run a request went unanswered: say where it stopped.
                print("pauses: a request failed; dispatched \(DispatchTally.counts(of: "resumer").keys.sorted()); the client's last events: \(recorder.events.filter { if case .message = $0 { false } else { true } }.suffix(16)); the host: \(host.client("resumer") as Any)")
                throw error
            }
            try await waitUntil(timeout: .seconds(30)) { recorder.messages.count >= pushes }
            try await Task.sleep(for: .milliseconds(300))
            let received = recorder.messages.map { $0.headers["n"] ?? "?" }
            #expect(received == (1...pushes).map { "\($0)" }, "every push once, in order")
            let damaged = recorder.messages.filter { $0.payload != Self.pushPayload(Int($0.headers["n"] ?? "") ?? 0) }
            #expect(damaged.isEmpty, "pushes not as sent: \(damaged.prefix(5).map { "\($0.headers["n"] ?? "?"): \($0.payload.readableBytes) bytes" })")
            let counts = DispatchTally.counts(of: "resumer")
            #expect(counts.count == requests && counts.values.allSatisfy { $0 == 1 }, "every request dispatched once")
            #expect(recorder.messages.allSatisfy { $0.headers["pos"] == nil }, "positions stay inside the client")
            #expect(recorder.count { if case .resumeReset = $0 { true } else { false } } == 0)
            conduit.close()
        }
    }

    /// Push `n`'s payload: every 10th 2 KB and up, every 50th 70 KB and up (two parts, which a
    /// pause can part: the client joins them whichever way each came).
    private static func pushPayload(_ n: Int) -> ByteBuffer {
        if n % 50 == 0 { return patternedBytes(n, count: 70_000 + n) }
        if n % 10 == 0 { return patternedBytes(n, count: 2_000 + n) }
        return ByteBuffer(string: "push \(n)")
    }

    /// The host's greeting never carries `pos`. A handler's (or a NATS worker's) push routed
    /// `conduit.resume` with `reset: true` was numbered like any push and taken as a greeting:
    /// the client reported a reset, forgot what it had sent, adopted the forged epoch, and its
    /// next reconnect got a real reset. It is delivered as the message it is.
    @Test func aPushRoutedLikeTheGreetingIsDeliveredNotObeyed() async throws {
        let yaml = Self.yaml + "  - route: test.push\n    handler: test.push\n"
        try await TestHost.run(yaml: yaml, catalog: .clientTests + [DispatchTally.kind, TestPushHandler.kind]) { host in
            let conduit = host.client(id: "forged-at", resume: true)
            let recorder = Recorder(conduit)
            try await conduit.connect()
            _ = try await conduit.request(route: "test.push", headers: [
                "to": "forged-at", "push-route": "conduit.resume", "push-reset": "true", "push-epoch": "forged",
                "push-resumed": "0", "push-replayed": "0", "push-lost": "0", "push-ack": "0",
            ])
            try await waitUntil { recorder.messages.contains { $0.headers.route == "conduit.resume" } }
            #expect(recorder.messages.first { $0.headers.route == "conduit.resume" }?.headers["epoch"] == "forged")
            try await conduit.reconnect()
            let reply = try await conduit.request(route: "echo", payload: ByteBuffer(string: "after"))
            #expect(String(buffer: reply.payload) == "after")
            #expect(recorder.count { if case .resumeReset = $0 { true } else { false } } == 0, "neither the forged greeting nor the reconnect is a reset")
            conduit.close()
        }
    }

    /// A page reloaded: the instance before closed before it acknowledged its last reply, and
    /// the host carries that reply to the next instance on the id (SPEC §9, a reset). Tokens
    /// counted from 1 in every instance, so it answered the new instance's first request.
    @Test func aReplyCarriedFromAnEarlierInstanceAnswersNoRequestOfTheNext() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let before = host.client(id: "reloaded", resume: true)
            try await before.connect()
            _ = try await before.request(route: "echo", payload: ByteBuffer(string: "for the instance before"))
            before.close()
            let next = host.client(id: "reloaded", resume: true)
            let recorder = Recorder(next)
            // Asked before the socket opens (it connects for it): waiting when the carried reply comes.
            let reply = try await next.request(route: "echo", payload: ByteBuffer(string: "for this instance"))
            #expect(String(buffer: reply.payload) == "for this instance")
            // The carried reply reaches the receive handler, as any message no request waits for.
            // Only if there was one to carry: in a loaded run the instance before acknowledged
            // its reply (its 200 ms) before it closed, and nothing was carried.
            guard (host.client("reloaded")?.resume?.carried ?? 0) > 0 else { return next.close() }
            try await recorder.waitForMessages(1)
            #expect(String(buffer: recorder.messages[0].payload) == "for the instance before")
            next.close()
        }
    }

    @Test func aResetIsReportedWhenTheHostForgotTheId() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let conduit = host.client(id: "forgotten", resume: true)
            let recorder = Recorder(conduit)
            try await conduit.connect()
            _ = try await conduit.request(route: "echo")
            #expect(recorder.count { if case .resumeReset = $0 { true } else { false } } == 0, "a first connect is no reset")
            // A plain connection for the id replaces the client's and ends the id's resume state.
            let plain = try await host.connect(client: "forgotten")
            try await recorder.waitFor { $0.willReconnect == false }
            try await plain.close()
            try await conduit.reconnect()
            try await recorder.waitFor { if case .resumeReset = $0 { true } else { false } }
            let reply = try await conduit.request(route: "echo", payload: ByteBuffer(string: "after"))
            #expect(String(buffer: reply.payload) == "after")
            conduit.close()
        }
    }

    /// A request with room for its own headers but not for `pos` is refused when it is sent:
    /// numbered anyway, it could not be encoded, was dropped as it was written, and its caller
    /// waited out the request's timeout.
    @Test func aRequestWithoutRoomForItsPositionIsRefusedAtOnce() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let conduit = host.client(id: "crowded", resume: true)
            try await conduit.connect()
            // With `route` and `token`: 255, the framing's limit, and no room for `pos`.
            let crowded = Headers((0..<(WireLimits.maxHeaders - 2)).map { ("h\($0)", "v") })
            await #expect(throws: WireError.self) { try await conduit.request(route: "echo", headers: crowded, timeout: .seconds(5)) }
            let roomy = Headers((0..<(WireLimits.maxHeaders - 3)).map { ("h\($0)", "v") })
            let reply = try await conduit.request(route: "echo", headers: roomy, timeout: .seconds(5))
            #expect(reply.headers["h251"] == "v" && reply.headers["pos"] == nil)
            conduit.close()
        }
    }

    /// With 4 MiB of its own messages unacknowledged (the socket down, the server paused), the
    /// client numbers nothing more: `send` says false and `request` goes over IPC, dispatched
    /// once; what it kept is dispatched once each after the server is back.
    @Test func aFullWindowSendsNothingMoreAndARequestGoesOverIPC() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let conduit = host.client(id: "full-window", resume: true)
            try await conduit.connect()
            let ipc = try #require(conduit.ipc)
            try await ipc.stop()
            let mebibyte = patternedBytes(1, count: 1 << 20)
            for n in 1...4 { #expect(try conduit.send(["route": "tally", "n": "kept\(n)"], payload: mebibyte), "kept \(n)") }
            #expect(try !conduit.send(["route": "tally", "n": "refused"]), "the window is full")
            let reply = try await conduit.request(route: "tally", headers: ["n": "over-ipc"], payload: ByteBuffer(string: "ipc"))
            #expect(reply.headers["n"] == "over-ipc" && String(buffer: reply.payload) == "ipc")
            try await ipc.start()
            try await waitUntil(timeout: .seconds(30)) { DispatchTally.counts(of: "full-window").count == 5 }
            try await Task.sleep(for: .milliseconds(300))
            #expect(DispatchTally.counts(of: "full-window") == ["kept1": 1, "kept2": 1, "kept3": 1, "kept4": 1, "over-ipc": 1])
            // Acknowledged, the window empties: numbered sends go again.
            let after = try await conduit.request(route: "tally", headers: ["n": "after"], timeout: .seconds(10))
            #expect(after.headers["n"] == "after" && DispatchTally.counts(of: "full-window")["after"] == 1)
            conduit.close()
        }
    }

    /// A long backlog is sent again in batches, the event loop reading its sockets between
    /// them: written in one go after the greeting, 30,000 small kept messages held the client's
    /// event loop (its reads and every other socket on it) for seconds, and a network that cut
    /// each socket sooner than that let nothing through, ever. Batches that queued the next one
    /// with `execute` held it as long: SwiftNIO runs the tasks that tasks queue before it polls
    /// its sockets again (the many-tasks chaos test's stall, on a proxy sharing the client's
    /// loop). Counted in turns of the loop, which both made one; a wait's length is no measure
    /// (a loaded machine stalls any thread).
    @Test func aLongBacklogIsSentAgainWithoutHoldingTheEventLoop() async throws {
        let backlog = 30_000
        try await TestHost.run(yaml: Self.yaml, catalog: .clientTests + [DispatchTally.kind]) { host in
            let turns = EventLoopTurns()
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1, metricsDelegate: turns)
            let conduit = host.client(id: "backlog", resume: true, group: group)
            try await conduit.connect()
            let ipc = try #require(conduit.ipc)
            try await ipc.stop()
            for n in 1...backlog { #expect(try conduit.send(["route": "tally", "n": "\(n)"])) }
            let resumption = try #require(conduit.resumption)
            turns.watch { Int(resumption.sentThrough) }
            try await ipc.start()
            try await waitUntil(timeout: .seconds(60)) { DispatchTally.counts(of: "backlog").count == backlog }
            let longestStep = turns.longestStep(from: 0, to: backlog)
            #expect(DispatchTally.counts(of: "backlog").values.allSatisfy { $0 == 1 }, "each dispatched once")
            print("backlog of \(backlog): at most \(longestStep) messages sent in one turn of the client's event loop; its longest turn took \(turns.longestTurn.nanoseconds / 1_000_000) ms")
            // A batch a turn, now and then two or three (a loaded machine stalls the loop's thread).
            #expect(longestStep <= 16 * Conduit.drainBatch.messages, "\(longestStep) kept messages sent in one turn of the client's event loop")
            conduit.close()
            try await group.shutdownGracefully()
        }
    }
}
