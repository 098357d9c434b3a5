import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// While the socket is down: `send` is false, `sendOrFallback` and `request` go over IPC, and
/// pushes arrive through the IPC fallback stream, in order and none twice, until the socket is
/// back and takes over.
@Suite("Client: IPC fallback", .serialized, .timeLimit(.minutes(1)))
struct FallbackTests {
    @Test func invocationsAndPushesTakeTheFallbackWhileTheSocketIsDown() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let id = ClientID("f1")!
            let conduit = host.client(id: "f1")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let ipc = try #require(conduit.ipc)
            try await ipc.stop()
            try await recorder.waitFor { $0.isClose }

            // Pushed before the fallback stream is attached: buffered, then streamed.
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: id) }
            #expect(try conduit.send(["route": "echo", "n": "x"]) == false)

            // The fallback invocation answers over IPC; the reply comes to the receive handler.
            let path = try await conduit.sendOrFallback(["route": "echo", "token": "fb"], payload: ByteBuffer(string: "over ipc"))
            #expect(path == .ipc)
            let reply = try await conduit.request(route: "echo", payload: ByteBuffer(string: "request over ipc"))
            #expect(String(buffer: reply.payload) == "request over ipc")

            try await waitUntil { host.client("f1")?.streaming == true }
            for n in 4...6 { host.host.directory.push(numberedPush(n), to: id) }
            var large = numberedPush(7)
            large.payload = ByteBuffer(repeating: 7, count: 200_000)
            host.host.directory.push(large, to: id)
            try await recorder.waitForMessages(8)

            try await ipc.start()
            try await recorder.waitFor { $0.isReopen }
            #expect(try await conduit.sendOrFallback(["route": "echo", "token": "sock"]) == .socket)
            for n in 8...10 { host.host.directory.push(numberedPush(n), to: id) }
            try await recorder.waitForMessages(12)

            let messages = recorder.messages
            let pushes = messages.filter { $0.headers.route == "test.push" }
            #expect(pushes.compactMap { $0.headers["n"] } == (1...10).map(String.init), "every push once, in order")
            #expect(pushes[6].payload == ByteBuffer(repeating: 7, count: 200_000), "a large push's parts are joined")
            let ipcReply = try #require(messages.first { $0.headers["token"] == "fb" })
            #expect(String(buffer: ipcReply.payload) == "over ipc")
            #expect(messages.contains { $0.headers["token"] == "sock" })
            #expect(messages.count == 12)
            #expect(host.client("f1")?.buffered == 0)
            conduit.close()
        }
    }

    @Test func anErrorReplyOverIPCIsThrownToo() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "f2")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            try await conduit.ipc?.stop()
            try await recorder.waitFor { $0.isClose }
            let error = await #expect(throws: ConduitReplyError.self) { try await conduit.request(route: "no.such.route") }
            #expect(error?.type == "NotFoundError")
            let reserved = await #expect(throws: ConduitClientError.self) {
                try await conduit.request(route: "echo", headers: ["key": "k"])
            }
            #expect(reserved?.code == .invalidMessage)
            // The socket refuses a control route; over IPC `internal.conduit.start` ran (and
            // `stop` would have paused the host).
            let control = await #expect(throws: ConduitClientError.self) { try await conduit.request(route: "internal.conduit.start") }
            #expect(control?.code == .invalidMessage)
            #expect(try await #require(conduit.ipc).status().isActive == false, "still paused")
            conduit.close()
        }
    }

    /// Over IPC the call waited for the exchange to end (the host's reply timeout, 60 s by
    /// default) before it looked at its own timeout or at `close()`.
    @Test func aRequestOverIPCEndsAtItsTimeoutAndOnClose() async throws {
        try await TestHost.run(yaml: TestHost.clientYAML, catalog: .clientTests) { host in
            let conduit = host.client(id: "f4")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            try await conduit.ipc?.stop()
            try await recorder.waitFor { $0.isClose }
            let started = ContinuousClock.now
            let timedOut = await #expect(throws: ConduitClientError.self) {
                try await conduit.request(route: "silent", timeout: .milliseconds(300))
            }
            #expect(timedOut?.code == .timedOut)
            #expect(ContinuousClock.now - started < .seconds(10), "ended after \(ContinuousClock.now - started)")
            let closedCall = Task { try await conduit.request(route: "silent", timeout: .seconds(50)) }
            try await Task.sleep(for: .milliseconds(300))
            let closing = ContinuousClock.now
            conduit.close()
            let closed = await #expect(throws: ConduitClientError.self) { try await closedCall.value }
            #expect(closed?.code == .closed)
            #expect(ContinuousClock.now - closing < .seconds(10), "ended \(ContinuousClock.now - closing) after close()")
        }
    }

    @Test func withoutAnIPCPortTheFallbackIsNotConnected() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "f3", ipc: false)
            let error = await #expect(throws: ConduitClientError.self) {
                try await conduit.sendOrFallback(["route": "echo"])
            }
            #expect(error?.code == .notConnected)
            let noRoute = await #expect(throws: ConduitClientError.self) { try await conduit.sendOrFallback(["n": "1"]) }
            #expect(noRoute?.code == .invalidMessage)
        }
    }
}

extension FallbackTests {
    /// A client of `id` whose socket is down (the host paused) and whose fallback stream is
    /// being read; its `receive` handler records each push's `n` and, given push 1, waits for
    /// the gate: the stream's delivery stops there until the test signals it.
    static func streamingWithPushOneHeld(
        _ id: ClientID, in host: TestHost
    ) async throws -> (Conduit, Recorder, DispatchSemaphore, NIOLockedValueBox<[String]>) {
        let conduit = host.client(id: id.rawValue)
        let recorder = Recorder(conduit)
        let gate = DispatchSemaphore(value: 0)
        let received = NIOLockedValueBox<[String]>([])
        conduit.receive { message in
            guard let n = message.headers["n"] else { return }
            if n == "1" { gate.wait() }
            received.withLockedValue { $0.append(n) }
        }
        try await conduit.connect()
        try await #require(conduit.ipc).stop()
        try await recorder.waitFor { $0.isClose }
        try await waitUntil { host.client(id.rawValue)?.streaming == true }
        return (conduit, recorder, gate, received)
    }

    /// A socket that came back while the fallback stream was still being read, and went down
    /// again, brought messages that were held until the receiver stopped, behind everything the
    /// next stream carried: pushes 1, 2, 4, and 3 only once a socket stayed. They are released
    /// when the stream they waited for ends now.
    @Test func whatASocketBroughtWhileAStreamWasReadComesBeforeTheNextStream() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let id = ClientID("held-order")!
            let (conduit, recorder, gate, received) = try await Self.streamingWithPushOneHeld(id, in: host)
            let ipc = try #require(conduit.ipc)
            for n in 1...2 { host.host.directory.push(numberedPush(n), to: id) }
            // A socket comes back (the host ends the stream after push 2), brings push 3 and goes.
            try await ipc.start()
            try await recorder.waitFor { $0.isReopen }
            host.host.directory.push(numberedPush(3), to: id)
            try await waitUntil { host.client("held-order")?.pushes == 3 && host.client("held-order")?.outboundQueued == 0 }
            try await ipc.stop()
            try await recorder.waitFor(2) { $0.isClose }
            host.host.directory.push(numberedPush(4), to: id)
            gate.signal()
            try await waitUntil(timeout: .seconds(20)) { received.withLockedValue { $0.contains("4") } }
            #expect(received.withLockedValue { $0 } == ["1", "2", "3", "4"])
            try await ipc.start()
            conduit.close()
        }
    }

    /// What a socket brings while the stream before it is still being handed to the application
    /// is held, up to 8 MiB: past that the socket stops reading, so the host holds the rest
    /// under its bounds (its queue for the id stays congested) instead of the client holding
    /// all of it in memory. Nothing is lost: released, it all comes, in order.
    @Test func aSocketStopsReadingWhileWhatItBroughtIsHeldPastItsBound() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let id = ClientID("held-bound")!
            let (conduit, recorder, gate, received) = try await Self.streamingWithPushOneHeld(id, in: host)
            let ipc = try #require(conduit.ipc)
            host.host.directory.push(numberedPush(1), to: id)
            try await ipc.start()
            try await recorder.waitFor { $0.isReopen }
            // 1 MiB pushes, each once the host's queue for the id is no longer congested: a
            // client that reads on takes them all, one that stopped leaves the queue congested.
            var pushed = 1
            while pushed < 100 {
                let drained = (try? await waitUntil(timeout: .seconds(5)) { !host.host.directory.isCongested(id) }) != nil
                guard drained else { break }
                pushed += 1
                #expect(host.host.directory.push(numberedPush(pushed, payload: patternedBytes(pushed, count: 1 << 20)), to: id, delivery: .reliable).isAccepted)
            }
            // 8 MiB held, the kernel's buffers both sides and the host's queue (8 MiB): well under 100.
            #expect(pushed < 100, "the client read every push while it held them")
            gate.signal()
            let all = (1...pushed).map(String.init)
            try await waitUntil(timeout: .seconds(30)) { received.withLockedValue { $0.count } == all.count }
            #expect(received.withLockedValue { $0 } == all)
            conduit.close()
        }
    }
}
