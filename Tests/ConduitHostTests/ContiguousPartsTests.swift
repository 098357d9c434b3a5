import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// SPEC §1: clients join parts until a part without `more`, so nothing may come between the
/// parts of a message (§3: no client receives parts of two messages joined as one). Writing a
/// part past the channel's high-water mark made it unwritable, and the flush made it writable
/// again, both inside the loop over the parts: the writability handler ran there and wrote
/// resume's owed `conduit.ack` between them. The Swift client took it as the end of the
/// message: a 100 KB reply reached the application as its last 34,465 bytes.
@Suite("Nothing between a message's parts", .serialized, .timeLimit(.minutes(1)))
struct ContiguousPartsTests {
    static let yaml = "routes:\n  - route: echo\n    handler: echo\n"

    @Test func anOwedAcknowledgementWaitsUntilTheLastPart() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let client = try await TestWebSocketClient.connect(port: host.port, path: host.path(client: "acked") + "&resume=0")
            #expect(try await client.nextMessage().headers.route == ResumeHeader.resumeRoute)
            let rounds = 16
            var position = 0
            for n in 0..<rounds {
                // 31 positions without a reply, then a request whose reply is in two parts: the
                // 32nd position makes an acknowledgement due as the reply is written.
                for _ in 0..<30 {
                    position += 1
                    try await client.send(["cancel": "nothing", "pos": "\(position)"])
                }
                position += 2
                try await Self.sendInTwo(client, ["route": "echo", "n": "\(n)"], payload: patternedBytes(n, count: 100_000), positions: (position - 1, position))
            }
            let interruptions = try await Self.interruptedParts(client, untilEach: ["echo"], numbered: rounds - 1)
            #expect(interruptions.isEmpty, "\(interruptions.count) messages came between parts: \(interruptions.prefix(3))")
        }
    }

    /// A request too large for one message: a chunk, then the rest with the route.
    static func sendInTwo(_ client: TestWebSocketClient, _ headers: Headers, payload: ByteBuffer, positions: (Int, Int)? = nil) async throws {
        var rest = payload
        let chunk = rest.readSlice(length: 60_000)!
        var last = headers
        var first: Headers = [:]
        if let positions {
            first["pos"] = "\(positions.0)"
            last["pos"] = "\(positions.1)"
        }
        try await client.send(together: [Message(headers: first, payload: chunk), Message(headers: last, payload: rest)])
    }

    struct Seen: CustomStringConvertible {
        let route: String?
        let n: Int?
        var description: String { "\(route ?? "no route") n=\(n.map(String.init) ?? "-")" }
    }

    /// Reads messages until one of each route in `routes` numbered `last` has come whole;
    /// returns each message that came between two parts of another.
    static func interruptedParts(_ client: TestWebSocketClient, untilEach routes: Set<String>, numbered last: Int) async throws -> [Seen] {
        var awaited = routes
        var interruptions: [Seen] = []
        var open: Headers?
        while !awaited.isEmpty {
            let message = try await client.nextMessage()
            var headers = message.headers
            headers.removeAll(ResumeHeader.position)
            headers.removeAll(ResumeHeader.ack)
            headers.removeAll("more")
            let current = Seen(route: message.headers.route, n: message.headers["n"].flatMap { Int($0) })
            if let open, open != headers { interruptions.append(current) }
            if message.headers.hasMore {
                if open == nil { open = headers }
                continue
            }
            if open == headers { open = nil }
            if current.n == last, let route = current.route { awaited.remove(route) }
        }
        return interruptions
    }
}
