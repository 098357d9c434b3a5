@testable import ConduitClient
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import Synchronization
import Testing

/// A host (or whatever took its port) that stops reading: the client must neither hang nor
/// buffer without end.
@Suite("Client: a host that reads nothing", .serialized, .timeLimit(.minutes(1)))
struct UnreadingHostTests {
    private static func client(of fake: FakeWebSocketHost, id: String) -> Conduit {
        Conduit(id: id, sharedKey: "fake-host-key", port: fake.port, autoReconnect: false)
    }

    /// The close handshake's wait began only once the close frame was written: behind what a
    /// host that reads nothing never took, it never was, and the socket stayed open for good
    /// (the event streams, which end with its close, never did).
    @Test func closeEndsTheSocketThoughTheHostReadsNothing() async throws {
        let fake = try await FakeWebSocketHost.start()
        let conduit = Self.client(of: fake, id: "unread-close")
        let recorder = Recorder(conduit)
        try await conduit.connect()
        let socket = try await fake.socket(0)
        try await socket.channel.setOption(.autoRead, value: false).get()
        // More than the kernel's buffers both sides take: the rest waits in the client's channel.
        let payload = ByteBuffer(repeating: 1, count: 60_000)
        for _ in 0..<300 { _ = try conduit.send(["route": "x"], payload: payload) }
        conduit.close()
        try await recorder.waitFor { $0.isClose }
        try await fake.stop()
    }

    /// Every ping was answered with a pong handed to the channel: a host that pinged and read
    /// nothing filled the client's memory with pongs (about 9 MB here).
    @Test func pingsOfAHostThatReadsNothingLeaveOnePongWaiting() async throws {
        let fake = try await FakeWebSocketHost.start()
        let conduit = Self.client(of: fake, id: "unread-pings")
        let last = NIOLockedValueBox(false)
        conduit.receive { message in if message.headers["route"] == "last" { last.withLockedValue { $0 = true } } }
        try await conduit.connect()
        let socket = try await fake.socket(0)
        try await socket.channel.setOption(.autoRead, value: false).get()
        let ping = WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(repeating: 7, count: 125))
        for _ in 0..<80_000 { socket.channel.write(ping, promise: nil) }
        socket.channel.flush()
        // Read after every ping.
        try await socket.send(["route": "last"])
        try await waitUntil(timeout: .seconds(40)) { last.withLockedValue { $0 } }
        let channel = try #require(conduit.state.withLockedValue { $0.connection?.channel })
        let buffered = try await channel.getOption(.bufferedWritableBytes).get()
        #expect(buffered < 1 << 20, "\(buffered) bytes of pongs wait in the client")
        conduit.close()
        try await fake.stop()
    }

    /// `send` handed every message to the channel: sent to a host that read nothing, they grew
    /// the client's memory without end. Past 8 MiB unwritten it refuses (false), and nothing it
    /// accepted is lost: once the host reads, all of it arrives, in order, and `send` takes more.
    @Test func sendsToAHostThatReadsNothingAreRefusedPastTheBoundAndNoneIsLost() async throws {
        let fake = try await FakeWebSocketHost.start()
        let conduit = Self.client(of: fake, id: "unread-sends")
        try await conduit.connect()
        let socket = try await fake.socket(0)
        try await socket.channel.setOption(.autoRead, value: false).get()
        // Under the fake's largest frame (16 KiB).
        let payload = ByteBuffer(repeating: 1, count: 12_000)
        var sent = 0
        while sent < 64 << 20 / 12_000, try conduit.send(["route": "fill", "n": "\(sent)"], payload: payload) { sent += 1 }
        #expect(sent < 64 << 20 / 12_000, "64 MiB taken for a host that reads nothing")
        try await socket.channel.setOption(.autoRead, value: true).get()
        try await waitUntil { [sent] in socket.received.withLockedValue { $0.count } == sent }
        #expect(socket.received.withLockedValue { $0.map { $0.headers["n"] } } == (0..<sent).map { "\($0)" })
        try await waitUntil { try conduit.send(["route": "after"]) }
        conduit.close()
        try await fake.stop()
    }

    /// A cancellation went through `send`'s bound: a request cancelled while the socket held
    /// 8 MiB unwritten was never cancelled on the host, and its handler's work ran on.
    @Test func aCancellationIsSentPastTheBoundOfUnwrittenSends() async throws {
        let fake = try await FakeWebSocketHost.start()
        let conduit = Self.client(of: fake, id: "unread-cancel")
        try await conduit.connect()
        let socket = try await fake.socket(0)
        let request = Task { try await conduit.request(route: "slow") }
        try await waitUntil { socket.received.withLockedValue { $0.contains { $0.headers["route"] == "slow" } } }
        let token = try #require(socket.received.withLockedValue { $0.first { $0.headers["route"] == "slow" }?.headers["token"] })
        try await socket.channel.setOption(.autoRead, value: false).get()
        // Under the fake's largest frame (16 KiB).
        let payload = ByteBuffer(repeating: 1, count: 12_000)
        var sent = 0
        while sent < 64 << 20 / 12_000, try conduit.send(["route": "fill"], payload: payload) { sent += 1 }
        #expect(try !conduit.send(["route": "refused"]), "the bound is reached")
        request.cancel()
        _ = await request.result
        try await socket.channel.setOption(.autoRead, value: true).get()
        try await waitUntil { socket.received.withLockedValue { $0.contains { $0.headers["cancel"] == token } } }
        conduit.close()
        try await fake.stop()
    }

    /// Resume acknowledged every 32 messages delivered, each acknowledgement handed to the
    /// channel: a host that sent and read nothing filled the client's memory with them (2,000
    /// here). While the socket takes no more the acknowledgement waits, and goes out once.
    @Test func aHostThatReadsNothingGetsOneAcknowledgementOnceItDoes() async throws {
        let fake = try await FakeWebSocketHost.start()
        let conduit = fake.resumingClient(id: "unread-acks")
        let delivered = Atomic<Int>(0)
        conduit.receive { _ in delivered.add(1, ordering: .relaxed) }
        try await conduit.connect()
        let socket = try await fake.socket(0)
        try await socket.greet(reset: true)
        try await socket.channel.setOption(.autoRead, value: false).get()
        // The client's own messages fill what the kernel takes, acknowledged window by window
        // as a host would that reads them: then its channel takes no more.
        let resumption = try #require(conduit.resumption)
        let takesMore = { conduit.state.withLockedValue { $0.connection?.channel.isWritable ?? false } }
        // Under the fake's largest frame (16 KiB).
        let payload = ByteBuffer(repeating: 1, count: 12_000)
        var sent: UInt64 = 0
        for _ in 0..<20 where takesMore() {
            try await waitUntil { try conduit.send(["route": "fill"], payload: payload) }
            sent += 1
            while try conduit.send(["route": "fill"], payload: payload) { sent += 1 }
            try await waitUntil { [sent] in resumption.sentThrough == sent }
            try await socket.send(["route": ResumeHeader.ackRoute, "ack": "\(sent)"])
        }
        #expect(!takesMore())
        let count = 64_000
        for position in 1...count {
            var buffer = ByteBuffer()
            try Message(headers: ["route": "push", "pos": "\(position)"]).encode(into: &buffer)
            socket.channel.write(WebSocketFrame(fin: true, opcode: .binary, data: buffer), promise: nil)
        }
        socket.channel.flush()
        try await waitUntil(timeout: .seconds(50)) { delivered.load(ordering: .relaxed) == count }
        try await socket.channel.setOption(.autoRead, value: true).get()
        try await waitUntil { socket.received.withLockedValue { $0.contains { $0.headers["ack"] == "\(count)" } } }
        let acknowledgements = socket.received.withLockedValue { $0.filter { $0.headers["ack"] != nil }.count }
        #expect(acknowledgements <= 2, "\(acknowledgements) acknowledgements waited in the client")
        conduit.close()
        try await fake.stop()
    }

    /// Resume's kept messages were written whatever the socket held unwritten, each counted as
    /// sent: a host that read nothing and acknowledged what it was sent let the client take and
    /// write window after window (about 4 MiB each here), without end. Past 8 MiB unwritten
    /// they wait in the window, which fills, and go out once the socket drains; none is lost.
    @Test func aHostAcknowledgingWhatItNeverReadGetsNoMoreThanTheUnsentBound() async throws {
        let fake = try await FakeWebSocketHost.start()
        let (conduit, socket, _) = try await fake.connectedResumingClient(id: "acked-unread")
        try await socket.greet()
        try await socket.channel.setOption(.autoRead, value: false).get()
        let resumption = try #require(conduit.resumption)
        let connection = try #require(conduit.state.withLockedValue { $0.connection })
        // Under the fake's largest frame (16 KiB).
        let payload = ByteBuffer(repeating: 1, count: 12_000)
        var accepted = 0
        var acknowledged: UInt64 = 0
        for _ in 0..<12 {
            while try conduit.send(["route": "fill"], payload: payload) { accepted += 1 }
            // The drain's turn: what it writes counts as sent.
            try await Task.sleep(for: .milliseconds(300))
            let sent = resumption.sentThrough
            guard sent > acknowledged else { break }
            acknowledged = sent
            try await socket.send(["route": ResumeHeader.ackRoute, "ack": "\(sent)"])
            try await waitUntil { try conduit.send(["route": "fill"], payload: payload) }
            accepted += 1
        }
        let unwritten = try await connection.channel.getOption(.bufferedWritableBytes).get()
        #expect(unwritten <= WebSocketConnection.maxUnsentBytes + (1 << 20), "\(unwritten) bytes unwritten")
        try await socket.channel.setOption(.autoRead, value: true).get()
        try await waitUntil(timeout: .seconds(60)) { [accepted] in socket.received.withLockedValue { $0.count } == accepted }
        let positions = socket.received.withLockedValue { $0.compactMap { $0.headers["pos"].flatMap { Int($0) } } }
        #expect(positions == Array(1...accepted))
        conduit.close()
        try await fake.stop()
    }
}
