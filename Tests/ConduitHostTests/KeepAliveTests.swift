import ConduitTesting
import Foundation
import NIOCore
import Testing

/// A peer gone without a FIN or a RST kept its socket, and so its id, "connected" for as long as
/// nothing was sent (the kernel's keepalive is off unless asked for, and waits two hours).
/// Seen from the kernel's table of TCP sockets: the host's end of a socket has its keepalive
/// timer running (`tr` 2 in /proc/net/tcp), due within the minute.
@Suite("TCP keepalive on sockets")
struct KeepAliveTests {
    @Test func theHostsEndOfASocketHasItsKeepaliveTimerRunning() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await TestWebSocketClient.connect(port: host.port, path: host.path(client: "kept-alive"))
            let clientPort = try #require(client.channel.localAddress?.port)
            // The kernel lists its table while sockets come and go, and can skip one then: read
            // again until it is there.
            try await waitUntil { try Self.timer(localPort: host.port, remotePort: clientPort) != nil }
            let timer = try #require(try Self.timer(localPort: host.port, remotePort: clientPort), "the host's end of the socket in /proc/net/tcp")
            #expect(timer.kind == 2, "timer \(timer): 2 is keepalive")
            #expect(timer.dueInSeconds <= 60)
            try await client.close()
        }
    }

    /// The `tr:tm->when` field of the IPv4 socket from `localPort` to `remotePort`.
    static func timer(localPort: Int, remotePort: Int) throws -> (kind: Int, dueInSeconds: Int)? {
        // Read to its end by hand: read whole by `String(contentsOfFile:)`, the table stopped
        // after its first page (a /proc file says it is empty), which a full run's sockets fill.
        let table = try String(decoding: FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/net/tcp")).readToEnd() ?? Data(), as: UTF8.self)
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 5,
                  let local = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                  let remote = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                  local == localPort, remote == remotePort
            else { continue }
            let parts = fields[5].split(separator: ":")
            guard parts.count == 2, let kind = Int(parts[0], radix: 16), let jiffies = Int(parts[1], radix: 16) else { return nil }
            return (kind, jiffies / 100)
        }
        return nil
    }
}
