import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// The client positions a resuming id remembers above an unfinished chunked request (SPEC §9:
/// each client message dispatched at most once): their memory is in the budget, and a message
/// refused past their bound is dispatched once it is sent again.
@Suite("Resume: positions above an open chunked request", .serialized, .timeLimit(.minutes(1)))
struct ResumeOpenChunkTests {
    /// `count` cancels of an unknown token, numbered from `first`: whole messages, no reply.
    static func cancels(from first: Int, count: Int) -> [Message] {
        (first..<first + count).map { Message(headers: ["cancel": "none", "pos": "\($0)"]) }
    }

    /// The remembered positions outlive the connection until the id expires, and were outside
    /// the budget: 4,096 of them held 64 KiB an id.
    @Test func positionsRememberedAboveAnOpenRequestAreInTheBudgetUntilTheIdExpires() async throws {
        let yaml = "limits:\n  clientGraceSeconds: 1\n" + ResumeTests.tallyYAML
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let budget = host.host.directory.budget
            let (socket, _) = try await ResumeTests.resume(host, id: "above")
            try await socket.send(["route": "tally", "n": "c", "more": "true", "pos": "1"], payload: [1, 2])
            // A duplicate after them fences them: counted once all before it are admitted.
            try await socket.send(together: Self.cancels(from: 2, count: 1) + [Message(headers: ["cancel": "none", "pos": "2"])])
            try await waitUntil { host.client("above")?.resume?.duplicates == 1 }
            let before = budget.usedBytes
            try await socket.send(together: Self.cancels(from: 3, count: 3000) + [Message(headers: ["cancel": "none", "pos": "3"])])
            try await waitUntil { host.client("above")?.resume?.duplicates == 2 }
            #expect(budget.usedBytes - before >= 3000 * 8, "\(budget.usedBytes - before) bytes more for 3,000 positions")
            try await socket.close()
            try await waitUntil { host.client("above") == nil }
            try await waitUntil { budget.usedBytes == 0 }
        }
    }

    /// Past the bound the connection is closed and the message not dispatched. It was recorded
    /// as processed all the same, so when its client sent everything again it was dropped as a
    /// duplicate and the messages after it ran: a digest check lost without a word. Sent again, it is
    /// refused again (the clients send a request's parts back to back: only a client that
    /// interleaves 4,096 messages with one request's parts meets the bound).
    @Test func aMessageRefusedPastTheBoundIsNeverTakenAsProcessed() async throws {
        try await TestHost.run(yaml: ResumeTests.tallyYAML, catalog: .ipcTests) { host in
            let (socket, greeting) = try await ResumeTests.resume(host, id: "bound")
            let epoch = try #require(greeting.headers["epoch"])
            let chunk = Message(headers: ["route": "tally", "n": "c", "more": "true", "pos": "1"], payload: ByteBuffer(bytes: [1, 2]))
            // Messages that stand alone above the open request: 4,096 remembered, the digest
            // check one too many.
            let digest = Message(headers: ["route": "tally", "digest": "", "token": "d", "pos": "4098"])
            let completing = Message(headers: ["route": "tally", "token": "c", "n": "c", "pos": "4099"], payload: ByteBuffer(bytes: [3]))
            try await socket.send(together: [chunk] + Self.cancels(from: 2, count: 4096) + [digest])
            #expect(try await socket.nextClose().code == 1008)

            let (again, resumed) = try await ResumeTests.resume(host, id: "bound", epoch: epoch)
            #expect(resumed.headers["ack"] == "0")
            try await again.send(together: [chunk] + Self.cancels(from: 2, count: 4096) + [digest, completing])
            let close = try await again.nextClose()
            #expect(close.code == 1008, "\(close.reason)")
            #expect(DispatchTally.counts(of: "bound").isEmpty, "nothing after the refused digest check ran")
        }
    }
}
