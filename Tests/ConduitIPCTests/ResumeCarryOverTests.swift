import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// A reset for a client that never read the epoch's greeting (it states another epoch, or none)
/// sends what the window held again, with new positions, ahead of everything else: released, it
/// was lost without a word (SPEC §9: beyond the window a loss is counted, never silent). The
/// case that showed it: a first socket cut before its client read the greeting took with it
/// the pushes the id had waiting.
@Suite("Resume: a reset carries over what was never read", .serialized, .timeLimit(.minutes(1)))
struct ResumeCarryOverTests {
    @Test func whatAFirstSocketSentBeforeItsClientReadTheGreetingComesAgainAfterTheReset() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("carry1")!
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: id) }
            let (first, _) = try await ResumeTests.resume(host, id: "carry1")
            // Sent, numbered 1 to 3; the client behind this socket never sees them.
            for n in 1...3 { #expect(try await first.nextMessage().headers["pos"] == "\(n)") }
            try await first.close()
            try await first.waitUntilClosed()
            try await waitUntil { host.client("carry1")?.connected == false }

            // It knows no epoch: it states none, as on a first connect.
            let (again, greeting) = try await ResumeTests.resume(host, id: "carry1")
            #expect(greeting.headers["reset"] == "true" && greeting.headers["replayed"] == "0")
            host.host.directory.push(numberedPush(4), to: id)
            var received: [Message] = []
            for _ in 1...4 { received.append(try await again.nextMessage()) }
            #expect(received.map { $0.headers["n"] } == ["1", "2", "3", "4"])
            #expect(received.map { $0.headers.values(of: "pos") } == [["1"], ["2"], ["3"], ["4"]])
            #expect(host.client("carry1")?.resume?.carried == 3)
        }
    }

    @Test func theEventsStreamOfAClientWithoutAnEpochGetsThemToo() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("carry2")!
            let (first, _) = try await ResumeTests.resume(host, id: "carry2")
            for n in 1...2 { host.host.directory.push(numberedPush(n), to: id) }
            for _ in 1...2 { _ = try await first.nextMessage() }
            try await first.close()
            try await waitUntil { host.client("carry2")?.connected == false }
            // More than the stream is read for: without what was carried, these came first.
            for n in 3...5 { host.host.directory.push(numberedPush(n), to: id) }

            var streamed: [Message] = []
            try await host.ipc().events(for: "carry2", query: [("resume", "0")]) { message in
                streamed.append(message)
                return streamed.count < 4
            }
            #expect(streamed.first?.headers.route == "conduit.resume" && streamed.first?.headers["reset"] == "true")
            #expect(streamed.dropFirst().map { $0.headers["n"] } == ["1", "2", "3"])
            #expect(streamed.dropFirst().map { $0.headers["pos"] } == ["1", "2", "3"])
        }
    }

    /// The client acknowledged the first part of a split message: the rest of it is not sent
    /// alone (the client would take it for a whole message), the messages after it are.
    @Test func aMessageWhoseFirstPartsWereAcknowledgedIsNotCarriedInPart() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("carry3")!
            let epoch = try await Self.acknowledgeAFirstPartAndLeave(host, id: "carry3")
            let (again, reset) = try await ResumeTests.resume(host, id: "carry3", epoch: "not-" + epoch)
            #expect(reset.headers["reset"] == "true")
            host.host.directory.push(numberedPush(3), to: id)
            let carried = try await again.nextMessage()
            #expect(carried.headers["n"] == "2" && carried.headers["pos"] == "1" && !carried.headers.hasMore)
            let next = try await again.nextMessage()
            #expect(next.headers["n"] == "3" && next.headers["pos"] == "2")
        }
    }

    /// Pushes message 1 in two parts and message 2, acknowledges the first part only, closes;
    /// returns the epoch.
    static func acknowledgeAFirstPartAndLeave(_ host: TestHost, id name: String) async throws -> String {
        let id = ClientID(name)!
        let (first, greeting) = try await ResumeTests.resume(host, id: name)
        let epoch = try #require(greeting.headers["epoch"])
        host.host.directory.push(numberedPush(1, payload: ByteBuffer(repeating: 1, count: WireLimits.maxPayloadBytes + 10)), to: id)
        host.host.directory.push(numberedPush(2), to: id)
        for _ in 1...3 { _ = try await first.nextMessage() }
        try await first.send(["ack": "1"])
        try await waitUntil { host.client(name)?.resume?.acknowledged == 1 }
        try await first.close()
        try await waitUntil { host.client(name)?.connected == false }
        return epoch
    }

    /// A socket that replaces the id's open one with a reset: the open socket's window comes
    /// first on the new one, then what the old one hands back, then new pushes.
    @Test func aReplacingSocketWithoutTheEpochGetsTheWindowBeforeAnythingElse() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("carry4")!
            let (first, _) = try await ResumeTests.resume(host, id: "carry4")
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: id) }
            for _ in 1...3 { _ = try await first.nextMessage() }

            let (second, greeting) = try await ResumeTests.resume(host, id: "carry4")
            #expect(greeting.headers["reset"] == "true")
            #expect(try await first.nextClose().reason == "replaced")
            for n in 4...6 { host.host.directory.push(numberedPush(n), to: id) }
            var received: [Message] = []
            for _ in 1...6 { received.append(try await second.nextMessage()) }
            #expect(received.map { $0.headers["n"] } == (1...6).map { "\($0)" })
            #expect(received.map { $0.headers["pos"] } == (1...6).map { "\($0)" })
        }
    }
}
