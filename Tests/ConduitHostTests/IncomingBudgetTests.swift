import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// What a connection holds of what it received takes its bytes from the host's budget like
/// every other buffer (SPEC §3): a message still arriving (500 connections each part way
/// through a 1 MB frame held 514 MB under a budget of 256 MiB before it did), and requests
/// still running.
@Suite("Incoming bytes in the budget", .serialized, .timeLimit(.minutes(1)))
struct IncomingBudgetTests {
    static let yaml = "limits:\n  maxMessageBytes: 1048576\n  hostBufferBytes: 1048576\nroutes:\n  - route: echo\n    handler: echo\n"

    @Test func aMessageStillArrivingIsChargedAndPastTheBudgetItsConnectionCloses() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let budget = host.host.directory.budget
            let padding = String(repeating: "p", count: 60_000)
            let request = try Message(headers: ["route": "echo", "token": "1", "padding": padding], payload: ByteBuffer(repeating: 7, count: 60_000)).encoded()
            let frame = Self.frame(announcing: request.readableBytes) + Array(request.readableBytesView)
            let slow = try await host.connect(client: "slow")
            try await slow.sendRaw(Array(frame[..<110_000]))
            try await waitUntil { budget.usedBytes >= 110_000 }

            // Incoming messages may fill half the budget (512 KiB): this one can't be held.
            let greedy = try await host.connect(client: "greedy")
            try await greedy.sendRaw(Self.frame(announcing: 1_000_000) + [UInt8](repeating: 0, count: 700_000))
            let close = try await greedy.nextClose()
            #expect(close.code == 1008, "\(close.reason)")
            try await greedy.waitUntilClosed()
            #expect(host.host.directory.budget.snapshot.dropped["host-budget"] == 1)

            try await slow.sendRaw(Array(frame[110_000...]))
            let echoed = try await slow.nextMessage()
            #expect(echoed.payload.readableBytes == 60_000 && echoed.headers["padding"] == padding)
            try await waitUntil { budget.usedBytes == 0 }
            try await slow.close()
        }
    }

    /// A binary frame's header with a zero mask (so the payload goes as it is).
    /// After its close the host reads on until the client's close, carrying a frame still
    /// arriving: that frame was outside the budget (up to the close timeout, 5 s, a connection).
    /// The frame grows past the incoming half, and its refusal, counted, is the lasting proof
    /// it was charged (a wait for the charge itself can outlast the close timeout).
    @Test func aFrameArrivingAfterTheHostsCloseIsInTheBudget() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let budget = host.host.directory.budget
            let raw = try await RawTCPClient.connect(port: host.port)
            let upgrade = "GET \(host.path(client: "closing")) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            // A text frame earns a close (1003), which this client never answers; a large frame
            // follows, part way.
            let text: [UInt8] = [0x81, 0x81, 0, 0, 0, 0, 0x78]
            try await raw.send(upgrade)
            #expect(String(buffer: try await raw.read(count: 12)).hasPrefix("HTTP/1.1 101"))
            try await raw.send(text + Self.frame(announcing: 600_000) + [UInt8](repeating: 0, count: 550_000))
            try await waitUntil { budget.snapshot.dropped["host-budget"] == 1 }
            try? await raw.close()
            try await waitUntil { budget.usedBytes == 0 }
        }
    }

    static func frame(announcing length: Int) -> [UInt8] {
        [0x82, 0xFF] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(length) >> (8 * $0)) } + [0, 0, 0, 0]
    }

    /// A request answered from a task keeps its payload until it is answered: 1,024 of them
    /// per connection could hold 64 MB outside the budget. They hold their bytes of it now;
    /// past it a request is answered `UnavailableError`, and cancelled ones give theirs back.
    @Test func requestsRunningHoldTheirBytesOfTheBudget() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\nroutes:\n  - route: slow\n    handler: slow\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let budget = host.host.directory.budget
            let client = try await host.connect(client: "many-slow")
            let payload = ByteBuffer(repeating: 1, count: 60_000)
            func request(_ index: Int, padding: Int = 0) throws -> [UInt8] {
                var headers: Headers = ["route": "slow", "token": "r\(index)", "mode": "patient"]
                if padding > 0 { headers.append("padding", String(repeating: "p", count: padding)) }
                let message = try Message(headers: headers, payload: payload).encoded()
                return Self.frame(announcing: message.readableBytes) + Array(message.readableBytesView)
            }
            for index in 0..<6 { try await client.sendRaw(request(index)) }
            try await waitUntil { budget.usedBytes >= 6 * 60_000 }
            // The seventh (120 KB) arrives in two reads, charged as it arrives; that charge is
            // given back when it is complete, not counted twice with the request.
            let seventh = try request(6, padding: 60_000)
            try await client.sendRaw(Array(seventh[..<110_000]))
            try await waitUntil { budget.usedBytes >= 6 * 60_000 + 110_000 }
            try await client.sendRaw(Array(seventh[110_000...]))
            // The eighth, split too (the pause makes two reads likely), finds the incoming half
            // full even with its first part alone: as a message no larger than a read, it is
            // held from the whole budget, and refused once complete like the others, not its
            // connection closed.
            let eighth = try request(7)
            try await client.sendRaw(Array(eighth[..<50_000]))
            try await Task.sleep(for: .milliseconds(50))
            try await client.sendRaw(Array(eighth[50_000...]))
            for index in 8..<11 { try await client.sendRaw(request(index)) }
            // Half the budget (512 KiB) takes the first seven; the others are refused at once.
            let refused = try await client.nextMessages(4)
            #expect(refused.allSatisfy { $0.isBudgetRefusal }, "\(refused.map(\.headers))")
            #expect(refused.map { $0.headers["token"] } == ["r7", "r8", "r9", "r10"])
            #expect(budget.usedBytes > 7 * 60_000 + 60_000 && budget.usedBytes <= 512 * 1024)
            for index in 0..<7 { try await client.send(["cancel": "r\(index)"]) }
            try await waitUntil { budget.usedBytes == 0 }
            try await client.close()
        }
    }

    /// The same for requests sent in chunks: each ran holding only its last message's bytes
    /// (a few hundred), the chunk queue's charge given back once it was joined, so a connection
    /// could keep 1,024 requests of 16 MiB each outside the budget. They hold the joined bytes now.
    @Test func chunkedRequestsRunningHoldTheirJoinedBytes() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\nroutes:\n  - route: slow\n    handler: slow\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let budget = host.host.directory.budget
            let client = try await host.connect(client: "chunked-slow")
            for index in 0..<6 {
                // Two chunks of 50 KB and the request itself: 100 KB joined.
                for _ in 0..<2 { try await client.send(Message(headers: [:], payload: ByteBuffer(repeating: 2, count: 50_000))) }
                try await client.send(Message(headers: ["route": "slow", "token": "c\(index)", "mode": "patient"]))
            }
            // Half the budget (512 KiB) takes five of 100 KB: the sixth's chunks are refused as
            // they come (SPEC §1: the queue is emptied, the next chunk starts a new one).
            let refused = try await client.nextMessages(2)
            #expect(refused.allSatisfy { $0.headers["error"] == "PayloadTooLargeError" && String(buffer: $0.payload).contains("budget") }, "\(refused.map(\.headers))")
            #expect(budget.usedBytes >= 5 * 100_000)
            for index in 0..<6 { try await client.send(["cancel": "c\(index)"]) }
            try await waitUntil { budget.usedBytes == 0 }
            try await client.close()
        }
    }
}
