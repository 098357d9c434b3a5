import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// A handler may answer in parts (`more: true` on each reply but the last); clients join a
/// message's parts until one without `more` (SPEC §1). Written as they came, a push made between
/// two parts went between them on the socket and the client joined it to the reply: the
/// reply's payload ended with the push's, and its true last part arrived as a message alone.
/// The host joins a handler's parts now and sends the reply whole (split by the host, back to
/// back, when it needs more than one frame).
@Suite("Handler replies in parts", .serialized, .timeLimit(.minutes(1)))
struct HandlerPartsTests {
    static let yaml = "limits:\n  hostBufferBytes: 1048576\nroutes:\n  - route: parted\n    handler: parted\n"

    @Test func aPushMadeBetweenTwoPartsIsNotJoinedToTheReply() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "parts")
            try await client.send(["route": "parted", "token": "1", "parts": "3", "size": "10"])
            // Read as a client reads: parts joined until one without `more`.
            let received = try await Self.nextJoinedMessages(3, from: client)
            let reply = try #require(received.first { $0.headers["token"] == "1" })
            #expect(Array(reply.payload.readableBytesView) == [UInt8](repeating: 0, count: 10) + [UInt8](repeating: 1, count: 10) + [UInt8](repeating: 2, count: 10))
            #expect(reply.headers["parts"] == "3")
            #expect(received.compactMap { $0.headers["after"] } == ["0", "1"], "the two pushes, each alone")
            #expect(received.allSatisfy { $0.headers["token"] == "1" || Array($0.payload.readableBytesView) == [9] })
        }
    }

    /// Joined, a reply of 100 KB parts is sent as the host's own parts, back to back.
    @Test func aLargeReplyInPartsArrivesWholeBesideThePushes() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "large-parts")
            try await client.send(["route": "parted", "token": "2", "parts": "3", "size": "100000"])
            let received = try await Self.nextJoinedMessages(3, from: client)
            let reply = try #require(received.first { $0.headers["token"] == "2" })
            #expect(reply.payload.readableBytes == 300_000)
            #expect(reply.payload.getBytes(at: reply.payload.readerIndex + 150_000, length: 1) == [1])
            #expect(received.compactMap { $0.headers["after"] } == ["0", "1"], "the two pushes, each alone")
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
        }
    }

    /// An error that ends a reply's parts is the answer: the parts before it were joined in
    /// front of its JSON, which no client could read.
    @Test func anErrorAfterPartsArrivesAlone() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "failing-parts")
            let reply = try await client.request(Message(headers: ["route": "parted", "token": "5", "parts": "3", "end": "fail"]))
            #expect(reply.headers["error"] == "InternalError")
            #expect(String(buffer: reply.payload).hasPrefix("{\"err\""), "\(String(buffer: reply.payload))")
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
        }
    }

    /// Parts are joined per request, not per token: a reply whose last part never came was
    /// joined in front of the next reply with its token.
    @Test func aLaterRequestWithTheSameTokenGetsItsOwnReply() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "reused-token")
            try await client.send(["route": "parted", "token": "6", "parts": "3", "end": "never"])
            _ = try await client.nextMessages(2)
            let reply = try await client.request(Message(headers: ["route": "parted", "token": "6", "parts": "1"]))
            #expect(Array(reply.payload.readableBytesView) == [UInt8](repeating: 0, count: 10))
        }
    }

    /// Parts whose last never comes are dropped once they are older than a request may run
    /// (`requestTimeoutSeconds`), at the connection's next reply: they held their bytes of the
    /// budget for as long as the connection lived. The request is answered `TimeoutError` then:
    /// it was never answered, and its client waited for its own timeout.
    @Test func partsWithoutAnEndAreDroppedWhenTooOld() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\n  requestTimeoutSeconds: 1\nroutes:\n  - route: parted\n    handler: parted\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let budget = host.host.directory.budget
            let client = try await host.connect(client: "unended-parts")
            try await client.send(["route": "parted", "token": "7", "parts": "3", "size": "50000", "end": "never"])
            _ = try await client.nextMessages(2)
            try await waitUntil { budget.usedBytes >= 100_000 }
            try await Task.sleep(for: .milliseconds(1_500))
            let reply = try await client.request(Message(headers: ["route": "parted", "token": "8", "parts": "1"]))
            #expect(reply.payload.readableBytes == 10)
            let late = try await client.nextMessage { $0.headers["token"] == "7" }
            #expect(late.headers["error"] == "TimeoutError" && late.headers.route == "parted", "\(late.headers)")
            try await waitUntil { budget.usedBytes == 0 }
        }
    }

    /// Parts dropped as too old and then more of them: the dropped join was forgotten after
    /// another request timeout, and the parts that came on made a reply of their own, sent as
    /// a success: the client got a truncated answer. They are dropped up to the last now, and
    /// the request is answered once, `TimeoutError`, when its parts are dropped.
    @Test func partsComingOnAfterTheirJoinWasDroppedAreNotSentAsAReply() async throws {
        let yaml = "limits:\n  requestTimeoutSeconds: 1\nroutes:\n  - route: parted\n    handler: parted\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "trickling-parts")
            // Parts at 0, 1.2 s and 2.4 s, the last at 2.5 s: the join is too old at the second.
            try await client.send(["route": "parted", "token": "9", "parts": "4", "every": "1200"])
            let answer = try await client.nextMessage(timeout: .seconds(10)) { $0.headers["token"] == "9" }
            #expect(answer.headers["error"] == "TimeoutError", "\(answer.headers), \(answer.payload.readableBytes) bytes")
            // The parts still to come (until 2.5 s) make no second answer.
            let more = try? await client.nextMessage(timeout: .seconds(4)) { $0.headers["token"] == "9" }
            #expect(more == nil, "a second answer of \(more?.payload.readableBytes ?? 0) bytes: \(more.map { "\($0.headers)" } ?? "")")
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
        }
    }

    static func nextJoinedMessages(_ count: Int, from client: TestWebSocketClient) async throws -> [Message] {
        var messages: [Message] = []
        for _ in 0..<count { messages.append(try await client.nextJoinedMessage()) }
        return messages
    }

    /// Parts without end can't hold more than the budget: the request is answered
    /// `UnavailableError` and what its parts held is given back.
    @Test func partsPastTheBudgetAreRefusedAndGiveTheirBytesBack() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "endless-parts")
            try await client.send(["route": "parted", "token": "3", "parts": "40", "size": "60000"])
            let refused = try await client.nextMessage { $0.headers["token"] == "3" }
            #expect(refused.headers["error"] == "UnavailableError", "\(refused.headers)")
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
            let after = try await client.request(Message(headers: ["route": "parted", "token": "4", "parts": "2"]))
            #expect(after.payload.readableBytes == 20)
        }
    }
}
