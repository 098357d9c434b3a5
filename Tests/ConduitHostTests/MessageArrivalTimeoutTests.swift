import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import NIOWebSocket
import Testing

/// A message that has begun to arrive must arrive whole within `limits.messageArrivalTimeoutSeconds`
/// (SPEC §3's bounds, as an IPC body's). Without it a frame's header, a megabyte, then a byte every
/// few seconds held up to 2 MiB of the host's budget a connection for as long as it trickled: 128
/// such connections, nearly free to the sender, held the default budget and every other client's
/// large message was refused.
@Suite("Message arrival timeout", .serialized, .timeLimit(.minutes(1)))
struct MessageArrivalTimeoutTests {
    static func yaml(arrivalSeconds: Int = 3) -> String {
        "limits:\n  maxMessageBytes: 1048576\n  messageArrivalTimeoutSeconds: \(arrivalSeconds)\nroutes:\n  - route: echo\n    handler: echo\n"
    }
    static let yaml = yaml()

    /// The trickle starts at once: a wait for the frame's charge first could miss it on a
    /// loaded machine (it lasts the 3 s); that a message still arriving is charged is
    /// `IncomingBudgetTests`' to show.
    @Test func aFrameThatTricklesIsCutOffAndItsBytesGoBack() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let budget = host.host.directory.budget
            let slow = try await host.connect(client: "trickling")
            try await slow.sendRaw(IncomingBudgetTests.frame(announcing: 600_000) + [UInt8](repeating: 0, count: 300_000))
            let trickle = Self.trickle(to: slow)
            defer { trickle.cancel() }
            let close = try await slow.nextClose(timeout: .seconds(15))
            #expect(close.code == 1008 && close.reason.contains("3 s"), "\(close)")
            try await waitUntil { budget.usedBytes == 0 }
            let other = try await host.connect(client: "other")
            let echoed = try await other.request(Message(headers: ["route": "echo", "token": "1"], payload: [1, 2, 3]))
            #expect(Array(echoed.payload.readableBytesView) == [1, 2, 3])
        }
    }

    /// Fragments joined so far are a message still arriving too; pings answered meanwhile (for
    /// 15 s at most) are not progress.
    @Test func aFragmentedMessageLeftOpenIsCutOff() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let open = try await host.connect(client: "open-fragments")
            let request = try Message(headers: ["route": "echo", "token": "1"], payload: [UInt8](repeating: 9, count: 1_000)).encoded()
            try await open.sendFrame(WebSocketFrame(fin: false, opcode: .binary, data: request))
            let pings = Task {
                for _ in 0..<50 where !Task.isCancelled {
                    guard (try? await open.sendFrame(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "p")))) != nil else { return }
                    try? await Task.sleep(for: .milliseconds(300))
                }
            }
            defer { pings.cancel() }
            let close = try await open.nextClose(timeout: .seconds(15))
            #expect(close.code == 1008, "\(close)")
        }
    }

    /// The time limit is each message's, from its first byte: messages that each arrive in time
    /// are served however long they take together, including one that begins in the read that
    /// ends the one before.
    @Test func messagesEachInTimeAreServedWhateverTheyTakeTogether() async throws {
        try await TestHost.run(yaml: Self.yaml(arrivalSeconds: 12), catalog: .hostTests) { host in
            let client = try await host.connect(client: "steady")
            let frames = try (0..<8).map { index in
                let message = try Message(headers: ["route": "echo", "token": "\(index)"], payload: [UInt8](repeating: 5, count: 2_000)).encoded()
                return IncomingBudgetTests.frame(announcing: message.readableBytes) + Array(message.readableBytesView)
            }
            // Each frame in two halves 2 s apart, the next frame's first half with the second:
            // 16 s in all, each well under its 12 s (with 6 s and 1 s, loaded full runs twice
            // delayed a half past the limit).
            try await client.sendRaw(Array(frames[0].prefix(1_000)))
            for index in frames.indices {
                try await Task.sleep(for: .seconds(2))
                let next = index + 1 < frames.count ? Array(frames[index + 1].prefix(1_000)) : []
                try await client.sendRaw(Array(frames[index].dropFirst(1_000)) + next)
            }
            let echoed = try await client.nextMessages(8)
            #expect(echoed.map { $0.headers["token"] } == (0..<8).map { "\($0)" })
        }
    }

    /// One byte every 200 ms, until the socket fails or 15 s pass.
    private static func trickle(to client: TestWebSocketClient) -> Task<Void, Never> {
        Task {
            for _ in 0..<75 {
                guard !Task.isCancelled, (try? await client.sendRaw([0])) != nil else { return }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
