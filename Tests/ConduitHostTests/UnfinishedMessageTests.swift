import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// A message still arriving is held in memory: it takes its bytes from the host's budget
/// like every other buffer (SPEC §3). 500 connections each part way through a 1 MB frame
/// held 514 MB under a budget of 256 MiB before it did.
@Suite("Messages still arriving", .serialized, .timeLimit(.minutes(1)))
struct UnfinishedMessageTests {
    static let yaml = "limits:\n  maxMessageBytes: 1048576\n  hostBufferBytes: 1048576\nroutes:\n  - route: echo\n    handler: echo\n"

    @Test func aMessageStillArrivingIsChargedAndPastTheBudgetItsConnectionCloses() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let budget = host.host.directory.budget
            let request = try Message(headers: ["route": "echo", "token": "1"], payload: ByteBuffer(repeating: 7, count: 60_000)).encoded()
            let frame = Self.frame(announcing: request.readableBytes) + Array(request.readableBytesView)
            let slow = try await host.connect(client: "slow")
            try await slow.sendRaw(Array(frame[..<40_000]))
            try await waitUntil { budget.usedBytes >= 40_000 }

            // Incoming messages may fill half the budget (512 KiB): this one can't be held.
            let greedy = try await host.connect(client: "greedy")
            try await greedy.sendRaw(Self.frame(announcing: 1_000_000) + [UInt8](repeating: 0, count: 700_000))
            let close = try await greedy.nextClose()
            #expect(close.code == 1008, "\(close.reason)")
            try await greedy.waitUntilClosed()
            #expect(host.host.directory.budget.snapshot.dropped["host-budget"] == 1)

            try await slow.sendRaw(Array(frame[40_000...]))
            let echoed = try await slow.nextMessage()
            #expect(echoed.payload.readableBytes == 60_000)
            try await waitUntil { budget.usedBytes == 0 }
            try await slow.close()
        }
    }

    /// A binary frame's header with a zero mask (so the payload goes as it is).
    static func frame(announcing length: Int) -> [UInt8] {
        [0x82, 0xFF] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(length) >> (8 * $0)) } + [0, 0, 0, 0]
    }
}
