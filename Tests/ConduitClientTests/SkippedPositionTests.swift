import ConduitClient
import ConduitTesting
import ConduitWire
import Testing

/// SPEC §9: host positions follow one another; only those a greeting counted lost may be
/// missing. The Swift client took a position far ahead as received: every message after it
/// was dropped as a duplicate, unseen, and nothing said so (the JavaScript client gives the
/// socket up). It is an error event now, and the socket is resumed again from the last
/// position received: nothing is lost, nothing comes twice.
@Suite("Client: a host position that skips ahead", .serialized, .timeLimit(.minutes(2)))
struct SkippedPositionTests {
    /// A resuming client of `fake` (falling back to `ipc`), connected, its events recorded,
    /// and its socket, greeted (a reset of epoch `e1`).
    private static func greetedClient(id: String, of fake: FakeWebSocketHost, ipc: FakeIPCHost? = nil) async throws -> (Conduit, Recorder, FakeSocket) {
        let conduit = fake.resumingClient(id: id, ipc: ipc)
        let recorder = Recorder(conduit)
        try await conduit.connect()
        let socket = try await fake.socket(0)
        try await socket.greet(reset: true)
        return (conduit, recorder, socket)
    }

    private static func push(_ position: UInt64, _ n: String) -> Headers {
        ["route": "push", "pos": "\(position)", "n": n]
    }

    @Test func aPositionThatSkipsAheadIsAnErrorAndTheSocketResumesFromTheLastReceived() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, recorder, first) = try await Self.greetedClient(id: "skipped", of: fake)
        try await first.send([Self.push(1, "p1"), Self.push(2, "p2"), Self.push(9_007_199_254_740_991, "bogus"), Self.push(3, "p3"), Self.push(4, "p4")])
        let again = try await fake.socket(1)
        #expect(fake.upgradeTargets.last?.contains("resume=2") == true, "asked from the last position received: \(fake.upgradeTargets)")
        try await again.greet(resumed: 2)
        for position in 3...5 as ClosedRange<UInt64> { try await again.send(Self.push(position, "p\(position)")) }
        try await recorder.waitForMessages(5)
        // Anything more would have come by now.
        try await Task.sleep(for: .milliseconds(300))
        #expect(recorder.messages.map { $0.headers["n"] } == ["p1", "p2", "p3", "p4", "p5"])
        let skipped = recorder.count { if case .error(let error) = $0 { error.message.contains("position 9007199254740991 where 3 was next") } else { false } }
        #expect(skipped == 1, "\(recorder.events.filter { if case .message = $0 { false } else { true } })")
        conduit.close()
        try await fake.stop()
    }

    /// A message in parts is numbered part by part: its last part's position is its first's
    /// plus the parts before it, no gap.
    @Test func aMessageInPartsIsNoGap() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, recorder, socket) = try await Self.greetedClient(id: "parts", of: fake)
        try await socket.send(Self.push(1, "p1"))
        for position in 2...4 as ClosedRange<UInt64> {
            var part = Self.push(position, "p2")
            if position < 4 { part.append("more", "true") }
            try await socket.send(part)
        }
        try await socket.send(Self.push(5, "p3"))
        try await recorder.waitForMessages(3)
        #expect(recorder.messages.map { $0.headers["n"] } == ["p1", "p2", "p3"])
        #expect(recorder.count { if case .error = $0 { true } else { false } } == 0)
        #expect(fake.upgradeTargets.count == 1, "the socket was kept")
        conduit.close()
        try await fake.stop()
    }

    /// A frame that does not decode had a position too (the host numbers every frame): the
    /// message after it is no gap. Told as the frame's error alone.
    @Test func aFrameThatDoesNotDecodeIsNoGap() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, recorder, socket) = try await Self.greetedClient(id: "undecodable", of: fake)
        try await socket.send(Self.push(1, "p1"))
        try await socket.sendUndecodableFrame()
        try await socket.send(Self.push(3, "p3"))
        try await recorder.waitForMessages(2)
        // Events reach the recorder through a stream read by a task of its own, messages through
        // the receive handler: the error could still be on its way (read as none, 1 full run of 3).
        try await recorder.waitFor { if case .error = $0 { true } else { false } }
        #expect(recorder.messages.map { $0.headers["n"] } == ["p1", "p3"])
        let errors = recorder.events.compactMap { if case .error(let error) = $0 { error } else { nil } }
        #expect(errors.map(\.code) == [.protocolError], "\(errors)")
        #expect(fake.upgradeTargets.count == 1, "the socket was kept")
        conduit.close()
        try await fake.stop()
    }

    /// The error names the position the next socket is asked from: the last received. A frame
    /// that did not decode took a position of its own, so it is not the one before the next
    /// expected (the error said 2 here while the socket was asked from 1).
    @Test func theErrorNamesThePositionAskedFromAgain() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, recorder, first) = try await Self.greetedClient(id: "skipped-after-undecodable", of: fake)
        try await first.send(Self.push(1, "p1"))
        try await first.sendUndecodableFrame()
        try await first.send(Self.push(9, "bogus"))
        try await recorder.waitFor { if case .error(let error) = $0 { error.code == .positionSkipped } else { false } }
        _ = try await fake.socket(1)
        #expect(fake.upgradeTargets.last?.contains("resume=1") == true, "\(fake.upgradeTargets)")
        let skipped = recorder.events.compactMap { if case .error(let error) = $0, error.code == .positionSkipped { error.message } else { nil } }
        #expect(skipped == ["the host sent position 9 where 3 was next; resumed again from 1"])
        conduit.close()
        try await fake.stop()
    }

    /// On the events stream as on the socket: the stream is given up, and the next is asked
    /// from the last position received.
    @Test func aPositionThatSkipsAheadOnTheEventsStreamEndsIt() async throws {
        let fake = try await FakeWebSocketHost.start()
        let ipc = try await FakeIPCHost.start(socketPort: fake.port)
        let (conduit, recorder, socket) = try await Self.greetedClient(id: "skipped-stream", of: fake, ipc: ipc)
        try await socket.send(Self.push(1, "p1"))
        try await recorder.waitForMessages(1)
        // No socket comes back: the events stream is all there is.
        try await fake.stop()
        try await socket.close()
        #expect(try await ipc.streamTarget(0).contains("resume=1&epoch=e1"))
        try await ipc.greetStream(0, epoch: "e1", resumed: 1)
        try await ipc.send([Self.push(2, "p2"), Self.push(9, "bogus"), Self.push(3, "p3")], onStream: 0)
        let next = try await ipc.streamTarget(1)
        #expect(next.contains("resume=2&epoch=e1"), "asked from the last position received: \(next)")
        try await ipc.greetStream(1, epoch: "e1", resumed: 2)
        try await ipc.send([Self.push(3, "p3")], onStream: 1)
        try await recorder.waitForMessages(3)
        try await Task.sleep(for: .milliseconds(300))
        #expect(recorder.messages.map { $0.headers["n"] } == ["p1", "p2", "p3"])
        // (The socket's reconnects, to a listener gone, give up: an error of their own. The fake
        // host's stop may reset the socket, also an error of its own, seen beside busy loops.)
        let errors = recorder.events.compactMap {
            if case .error(let error) = $0, ![.reconnectFailed, .socketFailed].contains(error.code) { error } else { nil }
        }
        #expect(errors.map(\.code) == [.positionSkipped], "\(errors)")
        conduit.close()
        try await ipc.stop()
    }
}
