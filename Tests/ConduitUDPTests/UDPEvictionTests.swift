import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// SPEC §3: every datagram dropped is counted per socket in `udp.getState`, including those
/// the host accepted and dropped later (`evicted`), so what the client got is what was pushed
/// less what was evicted.
@Suite("UDP datagrams evicted after they were pushed", .serialized, .timeLimit(.minutes(5)))
struct UDPEvictionTests {
    /// The id is away; one large datagram evicts three small ones from its buffer: one push
    /// that dropped the oldest, three datagrams gone.
    @Test func aDatagramThatEvictsSeveralFromTheBufferCountsEachOfThem() async throws {
        let yaml = "limits:\n  pushBufferBytes: 4000\nroutes:\n  - route: udp.*\n    handler: udp\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            let port = try await host.bindReadAndLeave(client: "ev1")
            let peer = try await UDPPeer()
            for n in 0..<3 { try await peer.send(Array("small \(n)".utf8), to: port) }
            try await waitUntil { host.client("ev1")?.buffered == 3 }
            try await peer.send(Array(repeating: 0x42, count: 3_900), to: port)
            try await waitUntil { host.client("ev1")?.pushes == 4 }

            let socket = try await host.connect(client: "ev1")
            #expect(try await socket.nextMessage(route: "udp.data").payload.readableBytes == 3_900)
            let state = try await socket.udpState(["route": "udp.getState", "token": "s"])
            #expect(state.received == 4)
            #expect(state.pushedBuffered == 3)
            #expect(state.pushedDroppingOldest == 1)
            #expect(state.evicted == 3)
            try await peer.close()
        }
    }

    /// The client reads nothing while datagrams pour in: its socket's outbound queue (4
    /// messages) evicts the oldest under drop-oldest, each push reported as sent. Every
    /// datagram pushed and not evicted reaches the client, in order, and nothing more.
    @Test func datagramsASlowReadersQueueEvictsAreCountedAndTheRestDelivered() async throws {
        let yaml = "limits:\n  outboundQueueMessages: 4\nroutes:\n  - route: udp.*\n    handler: udp\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            let socket = try await host.connect(client: "ev2", receiveBufferBytes: 65536)
            let port = try await socket.bindAndRead()
            try await socket.pauseReading()
            let peer = try await UDPPeer()
            let total = 6_000
            // In bursts waited for: every loss is the host's policy, not the kernel's (as in
            // `aBurstOf10000DatagramsIsAccountedFor`; these are larger, so fewer at a time).
            let burstSize = 50
            for burst in stride(from: 0, to: total, by: burstSize) {
                for n in burst..<burst + burstSize {
                    try await peer.send(withUnsafeBytes(of: UInt32(n).bigEndian, Array.init) + Array(repeating: 0, count: 996), to: port)
                }
                try await waitUntil(timeout: .seconds(60)) { host.client("ev2")?.pushes == burst + burstSize }
            }
            let hostDropped = try #require(host.client("ev2")).outboundDropped
            #expect(hostDropped > 0, "the queue never evicted: the test proves nothing")

            try await socket.resumeReading()
            // Behind what the kernel's buffers took (megabytes), read at the socket's pace: every
            // datagram still queued comes before this answer, which may evict one more.
            _ = try await socket.udpState(["route": "udp.getState", "token": "s1"], timeout: .seconds(60))
            let state = try await socket.udpState(["route": "udp.getState", "token": "s2"])
            #expect(state.received == total)
            #expect(state.pushedLive == total)
            #expect(state.evicted == host.client("ev2")?.outboundDropped)
            // What came before the answers (set aside while they were awaited): every datagram
            // not evicted, in order.
            var last = -1
            for _ in 0..<(state.pushedLive - state.evicted) {
                let push = try await socket.nextMessage()
                #expect(push.headers.route == "udp.data")
                let n = Int(try #require(push.payload.getInteger(at: push.payload.readerIndex, as: UInt32.self)))
                #expect(n > last)
                last = n
            }
            // And nothing else.
            try await socket.send(Message(headers: ["route": "udp.getState", "token": "s3"]))
            #expect(try await socket.nextMessage().headers["token"] == "s3")
            try await peer.close()
        }
    }
}
