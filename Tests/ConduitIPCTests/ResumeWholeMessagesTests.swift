import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// What the audit of the host's resume found: a window that gave out part of a message, held
/// memory outside the host's budget, or released messages at expiry without a count (SPEC §3:
/// drops are whole, every buffer is inside the budget, an expired id's buffers are counted).
@Suite("Resume: whole messages, inside the budget, counted", .serialized, .timeLimit(.minutes(2)))
struct ResumeWholeMessagesTests {
    /// A client may resume below its last acknowledgement (SPEC §9). When it had acknowledged
    /// the first part of a split message, the replay began with the message's last part alone,
    /// which a client joins to nothing: a message of 10 bytes taken for the whole. The rest of
    /// the message is lost with its first part, and counted.
    @Test func aResumeBelowTheAcknowledgementInsideAMessageReplaysNoPartAlone() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let epoch = try await ResumeCarryOverTests.acknowledgeAFirstPartAndLeave(host, id: "below")
            let (again, resumed) = try await ResumeTests.resume(host, id: "below", received: 0, epoch: epoch)
            #expect(resumed.headers["lost"] == "2" && resumed.headers["replayed"] == "1", "\(resumed.headers)")
            let next = try await again.nextMessage()
            #expect(next.headers["n"] == "2" && next.headers["pos"] == "3" && !next.headers.hasMore, "\(next.headers)")
        }
    }

    /// A reset carries the window's messages over to the new epoch. A split one went as its
    /// parts, each then numbered and kept as a message of its own: a window over its bound
    /// dropped two of three parts and replayed the last alone. It goes as the one message it is.
    @Test func aSplitMessageCarriedOverByAResetIsKeptWhole() async throws {
        let yaml = "limits:\n  resumeWindowBytes: 65536\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("carried-whole")!
            let size = 2 * WireLimits.maxPayloadBytes + 20_000
            let (first, _) = try await ResumeTests.resume(host, id: "carried-whole")
            host.host.directory.push(numberedPush(1, payload: patternedBytes(1, count: size)), to: id)
            _ = try await first.nextJoinedMessage()
            try await first.close()
            try await waitUntil { host.client("carried-whole")?.connected == false }

            // A client without the epoch: the message is carried over and sent again, and this
            // client leaves without acknowledging it.
            let (second, reset) = try await ResumeTests.resume(host, id: "carried-whole")
            let epoch = try #require(reset.headers["epoch"])
            #expect(reset.headers["reset"] == "true")
            _ = try await second.nextJoinedMessage()
            try await second.close()
            try await waitUntil { host.client("carried-whole")?.connected == false }

            let (third, resumed) = try await ResumeTests.resume(host, id: "carried-whole", received: 0, epoch: epoch)
            #expect(resumed.headers["lost"] == "0" && resumed.headers["replayed"] == "3", "\(resumed.headers)")
            let replayed = try await third.nextJoinedMessage()
            #expect(replayed.payload == patternedBytes(1, count: size), "\(replayed.payload.readableBytes) of \(size) bytes")
        }
    }

    /// Every id's newest message was kept over the window's bound even when the host's budget
    /// could not cover it, uncharged: 1,000 ids held 65 MB against a budget of 1 MiB. Such a
    /// message is not kept (its client, should it not have received it, is told it lost it).
    @Test func windowsStayInsideTheHostsBudget() async throws {
        let budget = 1 << 20
        // Every id lives to the end: beside two busy loops the 30 took over the default grace
        // (30 s), the first expired with their windows, and the rest fit the budget.
        let yaml = "limits:\n  hostBufferBytes: \(budget)\n  resumeWindowBytes: 65536\n  clientGraceSeconds: 600\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            for n in 0..<30 {
                let (socket, _) = try await ResumeTests.resume(host, id: "budget-\(n)")
                host.host.directory.push(numberedPush(n, payload: ByteBuffer(repeating: 2, count: 60_000)), to: ClientID("budget-\(n)")!)
                _ = try await socket.nextMessage()
                try await socket.close()
            }
            let windows = host.host.directory.snapshot.compactMap(\.resume)
            let memory = windows.reduce(0) { $0 + $1.windowMemoryBytes }
            #expect(memory <= budget, "the windows take \(memory) bytes of a budget of \(budget)")
            #expect(windows.reduce(0) { $0 + $1.evicted } > 0)
            #expect(host.host.directory.budget.usedBytes <= budget)
        }
    }

    /// An id that expires releases its window: its messages never acknowledged were dropped
    /// without a count (SPEC §3: an expired id's buffers are released and counted as dropped).
    @Test func aWindowReleasedAtExpiryIsCounted() async throws {
        let yaml = "limits:\n  clientGraceSeconds: 0.5\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let (socket, _) = try await ResumeTests.resume(host, id: "expiring")
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: ClientID("expiring")!) }
            for _ in 1...3 { _ = try await socket.nextMessage() }
            try await socket.close()
            try await waitUntil { host.client("expiring") == nil }
            #expect(host.host.directory.budget.snapshot.dropped["expired"] == 3, "\(host.host.directory.budget.snapshot.dropped)")
        }
    }
}
