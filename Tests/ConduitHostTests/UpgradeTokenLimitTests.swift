import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// SwiftNIO's upgrade handler tries each protocol an `Upgrade` header names with a level of
/// recursion: 39,000 of them, let in by a `maxHandshakeBytes` of 1 MiB, overflowed the event
/// loop's stack and took the host down, without the key. They are refused before it reads them.
@Suite("Handshake: the protocols an Upgrade header names", .serialized, .timeLimit(.minutes(1)))
struct UpgradeTokenLimitTests {
    static let yaml = "limits:\n  maxHandshakeBytes: 1048576\nroutes:\n  - route: echo\n    handler: echo\n"

    @Test func thousandsOfProtocolsAreRefused400AndTheHostLives() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let raw = try await RawTCPClient.connect(port: host.port)
            let named = Array(repeating: "a", count: 39_000).joined(separator: ",") + ",websocket"
            try await raw.send(
                "GET \(host.path(client: "many")) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: \(named)\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            let answer = String(buffer: try await raw.readUntilClosed(timeout: .seconds(30)))
            #expect(answer.hasPrefix("HTTP/1.1 400 "), "\(answer.prefix(200))")
            #expect(answer.hasSuffix("the Upgrade header names 39001 protocols; a handshake may name at most 8\n"))

            let socket = try await host.connect(client: "after")
            let reply = try await socket.request(Message(headers: ["route": "echo", "token": "1"]))
            #expect(reply.headers.route == "echo")
        }
    }

    @Test func aFewProtocolsOverTwoLinesStillUpgrade() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let status = try await RawTCPClient.handshakeStatus(
                port: host.port, path: host.path(client: "few"), extraHeaders: [("Upgrade", "h2c, foo/2, bar, baz, qux, quux, corge")])
            #expect(status == 101)
            let nine = try await RawTCPClient.handshakeStatus(
                port: host.port, path: host.path(client: "nine"), extraHeaders: [("Upgrade", "h2c, foo/2, bar, baz, qux, quux, corge, grault")])
            #expect(nine == 400)
        }
    }
}
