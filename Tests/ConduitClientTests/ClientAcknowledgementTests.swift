import ConduitClient
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import Testing

/// An acknowledgement owed on one socket (its 200 ms timer running) went out on the next
/// socket before that socket's greeting was read: if the greeting was a reset, the host took the
/// old epoch's position as one of the new epoch and released positions the client never read.
/// Acknowledgements wait for the greeting now (the URL's `resume=` says what they would have).
@Suite("Client: resume acknowledges only after the greeting", .serialized, .timeLimit(.minutes(1)))
struct StaleAckTests {
    @Test func noAcknowledgementGoesOutOnASocketBeforeItsGreeting() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, first, delivered) = try await fake.connectedResumingClient(id: "stale-ack")
        try await first.greet(reset: true)
        // Three positions: fewer than 32, so their acknowledgement waits for its 200 ms timer.
        for position in 1...3 { try await first.send(["route": "push", "pos": "\(position)"]) }
        try await waitUntil { delivered.value == 3 }
        try await first.close()

        let second = try await fake.socket(1)
        #expect(second.channel.isActive)
        // Past the timer: the greeting is held back, so nothing may have been acknowledged yet.
        try await Task.sleep(for: .milliseconds(600))
        #expect(second.received.withLockedValue { $0.filter { $0.headers["ack"] != nil } }.isEmpty)
        // Once it is read, acknowledgements flow as before.
        try await second.greet(resumed: 3)
        for position in 4...6 { try await second.send(["route": "push", "pos": "\(position)"]) }
        try await waitUntil { second.received.withLockedValue { $0.contains { $0.headers["ack"] == "6" } } }
        conduit.close()
        try await fake.stop()
    }
}

    /// An acknowledgement due before the socket's greeting (positions that came over the
    /// events stream meanwhile, here sent early by the fake) was counted as sent and dropped:
    /// the host heard of them only once something else was owed. It goes out after the greeting.
    @Test func anAcknowledgementDueBeforeTheGreetingGoesOutAfterIt() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, socket, delivered) = try await fake.connectedResumingClient(id: "early-ack")
        try await socket.send(["route": "push", "pos": "1"])
        try await waitUntil { delivered.value == 1 }
        // Past the acknowledgement's 200 ms.
        try await Task.sleep(for: .milliseconds(600))
        try await socket.greet()
        try await waitUntil { socket.received.withLockedValue { $0.contains { $0.headers["ack"] == "1" } } }
        conduit.close()
        try await fake.stop()
    }

    /// The events stream and the next socket each stated the epoch the client had, both in
    /// flight at once: a host that no longer held it gave the first a new epoch, and the
    /// second another, sending the first's messages again with new positions (delivered
    /// twice). A socket now states its position only once the stream's greeting is in.
    @Test func aSocketWaitsForTheStreamsGreetingBeforeItStatesAnEpoch() async throws {
        let fake = try await FakeWebSocketHost.start()
        let ipc = try await FakeIPCHost.start(socketPort: fake.port)
        let conduit = fake.resumingClient(id: "one-epoch", ipc: ipc)
        let delivered = Deliveries()
        conduit.receive { _ in delivered.count.add(1, ordering: .relaxed) }
        try await conduit.connect()
        let first = try await fake.socket(0)
        try await first.greet(reset: true)
        try await first.send(["route": "push", "pos": "1"])
        try await waitUntil { delivered.value == 1 }
        try await first.close()
        #expect(try await ipc.streamTarget(0).contains("epoch=e1"))
        // Time for a reconnect to come, were it to come now.
        try await Task.sleep(for: .milliseconds(500))
        #expect(fake.upgradeTargets.count == 1, "a socket stated a position beside the stream's: \(fake.upgradeTargets)")
        try await ipc.greetStream(0, epoch: "e2")
        try await waitUntil { fake.upgradeTargets.count == 2 }
        #expect(fake.upgradeTargets[1].contains("epoch=e2"), "\(fake.upgradeTargets[1])")
        conduit.close()
        try await ipc.stop()
        try await fake.stop()
    }

    /// A second greeting on one socket (only a broken host sends one) had the client write its
    /// whole kept log again: a host that greeted again and again, reading nothing, had it piled
    /// into the channel each time, without a bound.
    @Test func aSecondGreetingOnASocketSendsNothingAgain() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, socket, delivered) = try await fake.connectedResumingClient(id: "greeted-twice")
        try await socket.greet()
        for n in 1...3 { #expect(try conduit.send(["route": "work", "n": "\(n)"])) }
        try await waitUntil { socket.received.withLockedValue { $0.count } == 3 }
        try await socket.greet()
        // Delivered after the greeting was taken in.
        try await socket.send(["route": "push", "pos": "1"])
        try await waitUntil { delivered.value == 1 }
        #expect(try conduit.send(["route": "work", "n": "4"]))
        try await waitUntil { socket.received.withLockedValue { $0.contains { $0.headers["n"] == "4" } } }
        let positions = socket.received.withLockedValue { $0.compactMap { $0.headers["pos"] } }
        #expect(positions == ["1", "2", "3", "4"])
        conduit.close()
        try await fake.stop()
    }

/// An acknowledgement above every position the client sent (a host's mistake) released the
/// messages still waiting to go out: they were never sent, and nothing told the application.
@Suite("Client: resume takes acknowledgements only of what it sent", .serialized, .timeLimit(.minutes(1)))
struct AckAboveSentTests {
    @Test func messagesNotSentYetStayWhateverTheAcknowledgementSays() async throws {
        let fake = try await FakeWebSocketHost.start()
        let conduit = fake.resumingClient(id: "ack-above")
        let events = conduit.events()
        try await conduit.connect()
        let first = try await fake.socket(0)
        try await first.greet(reset: true)
        #expect(try conduit.send(["route": "probe"]))
        try await waitUntil { first.received.withLockedValue { $0.count } == 1 }
        try await first.close()
        // Sent before the client saw the close, they went out on the dead socket: sent, as far
        // as it can know.
        for await event in events { if case .close = event { break } }
        // Kept while the next socket has no greeting: none of these goes out before it.
        for n in 1...3 { #expect(try conduit.send(["route": "kept", "n": "\(n)"])) }
        let second = try await fake.socket(1)
        try await second.greet(ack: 1_000_000)
        try await waitUntil { second.received.withLockedValue { $0.count } == 3 }
        let resent = second.received.withLockedValue { $0 }
        #expect(resent.map { $0.headers["n"] } == ["1", "2", "3"])
        #expect(resent.map { $0.headers["pos"] } == ["2", "3", "4"], "the probe, sent, was acknowledged")
        conduit.close()
        try await fake.stop()
    }
}

/// `pos` and `ack` are the connection's (SPEC §9): an application's own `ack` went out as it was,
/// and the host took it for an acknowledgement of host positions the client may never have had.
@Suite("Client: resume sends only its own pos and ack", .serialized, .timeLimit(.minutes(1)))
struct ApplicationAckTests {
    @Test func anApplicationsPosAndAckNeverReachTheHost() async throws {
        let fake = try await FakeWebSocketHost.start()
        let conduit = fake.resumingClient(id: "app-ack")
        try await conduit.connect()
        let socket = try await fake.socket(0)
        try await socket.greet(reset: true)
        #expect(try conduit.send(["route": "note", "ack": "77", "pos": "9"]))
        try await waitUntil { socket.received.withLockedValue { $0.count } == 1 }
        let sent = try #require(socket.received.withLockedValue { $0.first })
        #expect(sent.headers["route"] == "note")
        #expect(sent.headers.values(of: "ack").isEmpty)
        #expect(sent.headers.values(of: "pos") == ["1"])
        conduit.close()
        try await fake.stop()
    }
}
