import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Testing

/// A push made `.droppableTallied` is counted in its tally when the host drops it after
/// accepting it, wherever that happens, and only then.
@Suite("Drops after acceptance, tallied for their source", .timeLimit(.minutes(1)))
struct DropTallyTests {
    private static func yaml(grace: Int = 30) -> String {
        "limits:\n  pushBufferMessages: 2\n  clientGraceSeconds: \(grace)\nroutes:\n  - route: echo\n    handler: echo\n"
    }

    private static func push(_ n: Int, to client: String, in host: TestHost, tally: DropTally) -> PushOutcome {
        host.host.directory.push(Message(headers: ["route": "tallied", "n": "\(n)"]), to: ClientID(client)!, delivery: .droppableTallied(tally))
    }

    @Test func theBufferEvictingTheOldestCountsEachOne() async throws {
        try await TestHost.run(yaml: Self.yaml(), catalog: .hostTests) { host in
            let tally = DropTally()
            #expect(Self.push(1, to: "tally-1", in: host, tally: tally) == .buffered)
            #expect(Self.push(2, to: "tally-1", in: host, tally: tally) == .buffered)
            #expect(tally.count == 0)
            #expect(Self.push(3, to: "tally-1", in: host, tally: tally) == .bufferedDroppingOldest)
            #expect(tally.count == 1)
            let socket = try await host.connect(client: "tally-1")
            #expect(try await socket.nextMessages(2).map { $0.headers["n"] } == ["2", "3"])
            #expect(tally.count == 1)
        }
    }

    @Test func anIdExpiringWithItsBufferCountsWhatItHeld() async throws {
        try await TestHost.run(yaml: Self.yaml(grace: 1), catalog: .hostTests) { host in
            let tally = DropTally()
            let other = DropTally()
            _ = Self.push(1, to: "tally-2", in: host, tally: tally)
            _ = Self.push(2, to: "tally-2", in: host, tally: tally)
            // Another source's drop is its own.
            _ = Self.push(3, to: "tally-3", in: host, tally: other)
            try await waitUntil { host.client("tally-2") == nil && host.client("tally-3") == nil }
            #expect(tally.count == 2)
            #expect(other.count == 1)
        }
    }
}
