import ConduitHost
import ConduitTesting
import NIOCore
import Testing

/// What connections that have not completed their handshake may cost, without the key: a
/// bounded number of them at once, each a bounded number of bytes. Before, 2,000 of them, each
/// holding 79 KB of an unfinished request head, took 264 MB of the host's memory.
@Suite("Pending handshakes", .serialized, .timeLimit(.minutes(1)))
struct PendingHandshakeTests {
    static let yaml = """
        limits:
          handshakeTimeoutSeconds: 600
          maxPendingHandshakes: 4
          maxHandshakeBytes: 2048
        routes:
          - route: echo
            handler: echo
        """

    static func partialHead(_ host: TestHost, client: String) -> String {
        "GET \(host.path(client: client)) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    }

    /// Past the bound the oldest waiting connection is closed to make room: a client that
    /// completes its handshake gets through connections that never do, and they stay bounded.
    @Test func aNewConnectionMakesRoomByClosingTheOldestWaitingOne() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            var waiting: [RawTCPClient] = []
            for index in 0..<4 {
                let raw = try await RawTCPClient.connect(port: host.port)
                try await raw.send(Self.partialHead(host, client: "w\(index)"))
                waiting.append(raw)
                // Connections are admitted on their own event loops, so in an order of their own
                // unless each has been counted before the next comes.
                try await waitUntil { host.host.pendingHandshakes == index + 1 }
            }
            #expect(try await RawTCPClient.handshakeStatus(port: host.port, path: host.path(client: "good")) == 101)
            // The handshake timeout is out of reach (above), so only the eviction closes one.
            let oldest = try await waiting[0].readUntilClosed(timeout: .seconds(30))
            #expect(oldest.readableBytes == 0, "closed without an answer")
            try await waitUntil { host.host.pendingHandshakes == 3 }
            let newerStillWaiting = waiting.dropFirst().filter(\.channel.isActive).count
            #expect(newerStillWaiting == 3)
        }
    }

    /// A head larger than `maxHandshakeBytes` is answered 431 and closed at once (not at the
    /// handshake timeout); one within it upgrades.
    @Test func aHandshakeLargerThanTheLimitIsAnswered431() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let raw = try await RawTCPClient.connect(port: host.port)
            try await raw.send(Self.partialHead(host, client: "big") + "X-Pad: " + String(repeating: "a", count: 3000))
            let answer = try await raw.readUntilClosed(timeout: .seconds(5))
            #expect(String(buffer: answer).hasPrefix("HTTP/1.1 431 "), "\(String(buffer: answer))")
            #expect(String(buffer: answer).hasSuffix("the handshake is larger than 2048 bytes\n"))

            let status = try await RawTCPClient.handshakeStatus(
                port: host.port, path: host.path(client: "fits"), extraHeaders: [("X-Pad", String(repeating: "a", count: 1500))])
            #expect(status == 101)
        }
    }
}
