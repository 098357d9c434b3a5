import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOWebSocket
import Testing

/// SPEC §3 "Backpressure and memory", "Drops are whole", "One life for every id": every
/// buffer bounded in bytes of whole messages, inside one host-wide budget.
@Suite("Memory and delivery", .serialized, .timeLimit(.minutes(1)))
struct MemoryModelTests {
    /// A payload of `count` bytes, every one `value`: a joined message mixing two shows at once.
    static func uniform(_ value: Int, count: Int) -> [UInt8] { [UInt8](repeating: UInt8(value % 256), count: count) }

    /// A client `id` that reads nothing, asking route `push` (a `pusher`) for 400 pushes of
    /// 60 KB to itself: 24 MB, more than its queue or the budget holds. Returns once some were
    /// dropped.
    static func fillAsANonReader(_ id: String, _ host: TestHost) async throws {
        let client = try await host.connect(client: id, receiveBufferBytes: 65536)
        try await client.pauseReading()
        try await client.send(["route": "push", "count": "400"], payload: uniform(1, count: 60_000))
        try await waitUntil { (host.client(id)?.outboundDropped ?? 0) + (host.client(id)?.dropped ?? 0) > 0 }
    }

    @Test func chunkHeadersCountAgainstTheChunkQueue() async throws {
        let yaml = "limits:\n  chunkQueueBytes: 1048576\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "big-headers")
            // 60 KB of headers and a 1-byte payload per chunk: the queue must count what each
            // keeps in memory, so the 18th chunk (past 1 MiB) is refused.
            let filler = String(repeating: "h", count: 60_000)
            for _ in 0..<20 {
                try await client.send(["pad": filler], payload: [1])
            }
            let refusal = try await client.nextMessage()
            #expect(refusal.headers["error"] == "PayloadTooLargeError")
            // The queue started again after the refusal: 2 chunks, then the echo's own byte.
            // The connection stays usable and the budget holds only what is still queued.
            let echoed = try await client.request(Message(headers: ["route": "echo", "token": "after"], payload: ByteBuffer(bytes: [2])))
            #expect(echoed.headers["token"] == "after")
            #expect(Array(echoed.payload.readableBytesView) == [1, 1, 2])
            #expect(host.host.directory.budget.usedBytes <= 1 << 20)
        }
    }

    @Test func aNonReadersQueueIsBoundedInBytes() async throws {
        let yaml = "limits:\n  outboundQueueBytes: 1048576\nroutes:\n  - route: push\n    handler: pusher\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            // 24 MB for a client that reads nothing: the 4,096-message count bound alone would
            // keep all of it.
            try await Self.fillAsANonReader("non-reader", host)
            let snapshot = try #require(host.client("non-reader"))
            #expect(snapshot.outboundQueuedBytes + snapshot.bufferedBytes <= (1 << 20) + 2 * 60_100)
            #expect(host.host.directory.budget.usedBytes <= (1 << 20) + 2 * 60_100)
        }
    }

    /// A client that stops reading and then sends its close (or breaks the protocol): the host's
    /// answering close frame can't be written, and the connection waited for that write with no
    /// time limit, its descriptor and what its channel held kept for good (and out of reach of
    /// `stop`, since the id had already let it go). Closed after the close handshake's timeout now.
    @Test(arguments: [false, true]) func aClosingClientThatDoesNotReadIsClosedAnyway(breaksTheProtocol: Bool) async throws {
        let yaml = "limits:\n  outboundQueueBytes: 1048576\nroutes:\n  - route: push\n    handler: pusher\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "stuck-closer", receiveBufferBytes: 65536)
            try await client.pauseReading()
            try await client.send(["route": "push", "count": "100"], payload: Self.uniform(4, count: 60_000))
            try await waitUntil { (host.client("stuck-closer")?.outboundQueuedBytes ?? 0) > 0 }
            if breaksTheProtocol {
                try await client.sendRaw([0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 200))
            } else {
                try await client.sendFrame(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8])))
            }
            // The client reads nothing, so only a write shows the host's end closed (reset).
            try await waitUntil(timeout: .seconds(20)) {
                try? await client.sendRaw([0x89, 0x80, 0, 0, 0, 0])
                return !client.channel.isActive
            }
        }
    }

    @Test func theClosePolicyKeepsOnlyWhatTheIdsBufferHolds() async throws {
        let yaml = """
            limits:
              outboundQueueBytes: 1048576
              pushBufferBytes: 2097152
              outboundPolicy: close
            routes:
              - route: push
                handler: pusher
            """
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "closed-slow", receiveBufferBytes: 65536)
            try await client.pauseReading()
            try await client.send(["route": "push", "count": "400"], payload: Self.uniform(2, count: 60_000))
            try await waitUntil { host.client("closed-slow")?.connected == false }
            try await waitUntil { (host.client("closed-slow")?.pushes ?? 0) >= 400 }
            let snapshot = try #require(host.client("closed-slow"))
            #expect(snapshot.bufferedBytes <= 2 << 20)
            #expect(snapshot.dropped > 0)
            #expect(host.host.directory.budget.usedBytes <= (2 << 20) + 60_100)
        }
    }

    @Test func aDepartedIdsBufferIsReleasedAtExpiry() async throws {
        let yaml = "limits:\n  clientGraceSeconds: 3\nroutes:\n  - route: push\n    handler: pusher\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let sender = try await host.connect(client: "expiry-sender")
            _ = try await sender.request(Message(headers: ["route": "push", "to": "departed", "count": "100"], payload: ByteBuffer(bytes: Self.uniform(3, count: 10_000))))
            // Not `buffered == 100` now: that lasts the 3 s grace, which a loaded machine can
            // outlast; the 100 dropped at expiry show they were all buffered.
            try await waitUntil { host.client("departed") == nil }
            // Handlers hear of the expiry once the id's lock is released, just after it leaves the table.
            try await waitUntil { EventLog.shared.all(for: "departed").contains(.expired(.init("departed")!)) }
            #expect(host.host.directory.budget.snapshot.dropped["expired"] == 100)
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
        }
    }

    @Test func dropOldestDropsWholeMessagesNeverParts() async throws {
        let yaml = """
            limits:
              outboundQueueMessages: 4
              outboundQueueBytes: 65536
            routes:
              - route: push
                handler: pusher
              - route: echo
                handler: echo
            """
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "whole", receiveBufferBytes: 65536)
            try await client.pauseReading()
            // Each push is 150,000 bytes: three parts on the wire. Every payload byte is the
            // push's own number, so parts of two pushes joined are seen.
            for n in 0..<30 {
                // A 150,000-byte request goes as two chunks and a last part (SPEC §1).
                try await client.send([:], payload: Self.uniform(n, count: 60_000))
                try await client.send([:], payload: Self.uniform(n, count: 60_000))
                try await client.send(["route": "push", "count": "1"], payload: Self.uniform(n, count: 30_000))
            }
            try await waitUntil { (host.client("whole")?.outboundDropped ?? 0) + (host.client("whole")?.dropped ?? 0) > 0 }
            try await client.resumeReading()
            // Read up to a reply sent after everything else.
            try await client.send(["route": "echo", "token": "end"])
            var received = 0
            while true {
                let message = try await client.nextJoinedMessage()
                if message.headers["token"] == "end" { break }
                if message.headers["n"] != nil {
                    let bytes = Array(message.payload.readableBytesView)
                    #expect(bytes.count == 150_000, "a push arrives whole")
                    #expect(Set(bytes).count == 1, "a push is never joined with parts of another")
                    received += 1
                }
            }
            #expect(received > 0 && received < 30)
        }
    }

    @Test func aReplacingSocketGetsTheOldSocketsUnsentMessagesFirstAndInOrder() async throws {
        try await TestHost.run(yaml: "routes:\n  - route: push\n    handler: pusher\n", catalog: .hostTests) { host in
            let first = try await host.connect(client: "handover", receiveBufferBytes: 65536)
            try await first.pauseReading()
            try await first.send(["route": "push", "count": "100"], payload: Self.uniform(4, count: 60_000))
            try await waitUntil { host.client("handover")?.outboundQueued ?? 0 > 10 }
            let second = try await host.connect(client: "handover")
            // Nothing else is pushed: what the first socket had not written must reach the
            // second on its own, in order, up to the last push.
            try await Self.readInOrder(from: second, through: 99)
        }
    }

    /// A large message handed to a socket's channel holds its bytes of the budget until the
    /// socket has taken all of it: it was released as it was handed over, so a client that asked
    /// for a large echo and read nothing kept it in the channel outside the budget (20 such
    /// clients with 16 MiB echoes held 345 MB, the budget's use 0).
    /// A reply the budget can't take (a client that reads nothing holds it all) was dropped,
    /// counted, and nothing told its client: the request waited for its own timeout. It is
    /// answered `UnavailableError` in its place.
    @Test func aReplyTheBudgetRefusesIsAnsweredWithAnError() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\nroutes:\n  - route: push\n    handler: pusher\n  - route: parted\n    handler: parted\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            try await Self.fillAsANonReader("budget-hog", host)
            let asker = try await host.connect(client: "budget-asker")
            // One reply of 200 KB (one part: `parts: 1`), more than what the budget has left.
            try await asker.send(["route": "parted", "parts": "1", "size": "200000", "token": "big"])
            let answer = try await asker.nextJoinedMessage(timeout: .seconds(10))
            #expect(answer.headers["token"] == "big" && answer.headers["error"] == "UnavailableError", "\(answer.headers)")
        }
    }

    @Test func largeRepliesWaitingInTheChannelHoldTheirBytesOfTheBudget() async throws {
        // 12 MB: more than the kernel's socket buffers take (up to 4 MiB on Linux), and no more
        // than the budget's incoming half, which a chunk queue may fill.
        let size = 200 * 60_000
        let yaml = "limits:\n  hostBufferBytes: 33554432\nroutes:\n  - route: echo\n    handler: test.tally\n"
        try await TestHost.run(yaml: yaml, catalog: HandlerCatalog([DispatchTally.kind])) { host in
            let budget = host.host.directory.budget
            var clients: [TestWebSocketClient] = []
            for index in 0..<4 {
                let client = try await host.connect(client: "stalled-\(index)", receiveBufferBytes: 65536)
                try await client.pauseReading()
                // One after another, so their chunk queues don't compete for the budget.
                for _ in 0..<200 { try await client.send([:], payload: Self.uniform(index, count: 60_000)) }
                try await client.send(["route": "echo", "n": "last"])
                try await waitUntil { DispatchTally.counts(of: "stalled-\(index)")["last"] == 1 }
                clients.append(client)
            }
            // The first echo holds its bytes while part of it waits in the channel; the others'
            // chunks found the budget short and were refused (counted), not held beyond it.
            #expect(budget.usedBytes >= size && budget.usedBytes <= budget.limit, "\(budget.usedBytes)")
            #expect(budget.snapshot.dropped["host-budget"] ?? 0 > 0)
            for client in clients.dropFirst() {
                try await client.resumeReading()
                while try await client.nextJoinedMessage().headers["n"] != "last" {}
            }
            // Its client goes without reading: the channel's failed write gives its bytes back.
            try await clients[0].channel.close()
            try await waitUntil { budget.usedBytes == 0 }
        }
    }

    @Test func aPushThatCantBeEncodedIsReportedDropped() async throws {
        try await TestHost.run(yaml: "routes:\n  - route: outcome\n    handler: outcome\n", catalog: .hostTests) { host in
            let client = try await host.connect(client: "truthful")
            let bad = try await client.request(Message(headers: ["route": "outcome", "token": "2", "headers": "300"]))
            #expect(String(buffer: bad.payload).contains("unencodable"))
        }
    }

    /// Pushes made off the socket's event loop wait in the id's buffer, whose bound was the
    /// socket's queue's bytes less what that queue held, but its whole message count: each push
    /// found the buffer empty (drained since), and the socket's queue grew past its message
    /// bound without end (to about 2,000 of 50 here).
    @Test func pushesFromAnotherLoopKeepTheSocketsQueueUnderItsMessageBound() async throws {
        let yaml = """
            limits:
              outboundQueueMessages: 50
              outboundQueueBytes: 33554432
            routes:
              - route: echo
                handler: echo
            """
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect(client: "counted", receiveBufferBytes: 4096)
            try await client.pauseReading()
            let id = ClientID("counted")!
            // From this task, on no event loop. Droppable: past the bound, the oldest go.
            // 12 MB: more than the kernel's buffers take, under the queue's byte bound (32 MiB).
            for n in 0..<3_000 {
                _ = host.host.directory.push(numberedPush(n, payload: ByteBuffer(repeating: 1, count: 4_000)), to: id)
                if n % 100 == 99 { try await waitUntil { host.client("counted")?.buffered == 0 } }
            }
            try await waitUntil { host.client("counted")?.buffered == 0 }
            let snapshot = try #require(host.client("counted"))
            #expect(snapshot.outboundQueued <= 50, "\(snapshot.outboundQueued) messages queued for a socket bound to 50")
            #expect(snapshot.dropped + snapshot.outboundDropped > 0)
        }
    }

    @Test func aRelayIsAcknowledgedOnlyWhenTheRecipientsQueueTookIt() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let recipient = try await host.connect(client: "full-recipient", receiveBufferBytes: 65536)
            try await recipient.pauseReading()
            let sender = try await host.connect(client: "relay-sender")
            var refused: Message?
            for index in 0..<200 where refused == nil {
                let answer = try await sender.request(Message(
                    headers: ["to": "full-recipient", "token": "\(index)"], payload: ByteBuffer(bytes: Self.uniform(5, count: 60_000))))
                if answer.headers["error"] != nil { refused = answer }
            }
            let refusal = try #require(refused, "the host's budget can't take 12 MB of relays")
            #expect(refusal.headers["error"] == "UnavailableError")
            #expect(host.host.directory.budget.snapshot.dropped["host-budget"] ?? 0 > 0)
        }
    }
}

extension MemoryModelTests {
    /// A socket that closes hands what it had not written back to its id's buffer, ahead of
    /// anything newer. Past the buffer's bound that hand-back dropped the newest messages of any
    /// kind: reliable ones too (a TLS stream's bytes, an AI stream's tokens), which their handler
    /// had been told were accepted: a hole in a byte stream. Accepted reliable messages are kept
    /// now, over the bound (bounded by what the socket's queue held, and charged to the budget).
    @Test func aClosedSocketsUnsentReliableMessagesAreAllHandedBack() async throws {
        let yaml = "limits:\n  outboundQueueBytes: 16777216\n  pushBufferBytes: 1048576\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = ClientID("reliable-holder")!
            let first = try await host.connect(client: client.rawValue, receiveBufferBytes: 65536)
            try await first.pauseReading()
            // 9 MB: more than the kernel's buffers take, the rest queued for the socket. In tens,
            // each waited for until the socket's loop has taken it from the id's buffer: pushes
            // from another thread wait there on their way, within its bound (1 MiB here), and a
            // loaded loop that took none of 150 in a row refused the 18th.
            for n in 0..<150 {
                let outcome = host.host.directory.push(numberedPush(n, payload: ByteBuffer(bytes: Self.uniform(n, count: 60_000))), to: client, delivery: .reliable)
                #expect(outcome.isAccepted, "push \(n): \(outcome)")
                if n % 10 == 9 { try await waitUntil { host.client(client.rawValue)?.buffered == 0 } }
            }
            try await waitUntil { host.client(client.rawValue)?.outboundQueued ?? 0 > 10 }
            try await first.channel.close()
            try await waitUntil { host.client(client.rawValue)?.connected == false }
            #expect(host.client(client.rawValue)?.dropped == 0)
            // What the first socket had written is its own to lose; the rest follows, whole.
            let second = try await host.connect(client: client.rawValue)
            try await Self.readInOrder(from: second, through: 149)
        }
    }

    /// Reads numbered pushes (`n`) until `last`: each one after the first read must follow the
    /// one before it.
    static func readInOrder(from socket: TestWebSocketClient, through last: Int) async throws {
        var previous = -1
        while previous < last {
            let message = try await socket.nextJoinedMessage()
            guard let n = message.headers["n"].flatMap(Int.init) else { continue }
            if previous >= 0 { #expect(n == previous + 1, "in order, none missing") }
            previous = n
        }
    }
}
