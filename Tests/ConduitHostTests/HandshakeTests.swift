import ConduitTesting
import ConduitWire
import NIOCore
import NIOHTTP1
import Testing

/// SPEC §2: who may open a socket, and the order of the checks.
@Suite("Handshake", .serialized, .timeLimit(.minutes(1)))
struct HandshakeTests {
    private func status(_ host: TestHost, _ path: String, _ headers: [(String, String)] = [], omitKey: Bool = false) async throws -> Int {
        try await RawTCPClient.handshakeStatus(port: host.port, path: path, extraHeaders: headers, omitKey: omitKey)
    }

    @Test func rightKeyUpgradesWrongOrMissingKeyIs403() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            #expect(try await status(host, host.path()) == 101)
            #expect(try await status(host, host.path(key: "wrong-key-123")) == 403)
            #expect(try await status(host, "/1/0") == 403)
            await #expect(throws: TestClientError.handshakeRefused) {
                _ = try await TestWebSocketClient.connect(port: host.port, path: host.path(key: "nope"))
            }
        }
    }

    @Test func keyInSubprotocolSelectsConduit() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            let client = try await TestWebSocketClient.connect(
                port: host.port, path: "/7/0",
                headers: ["Sec-WebSocket-Protocol": "conduit, conduit.key.\(host.sharedKey)"]
            )
            #expect(try await client.request(.init(headers: ["route": "echo"])).headers["route"] == "echo")
            #expect(try await status(host, "/7/0", [("Sec-WebSocket-Protocol", "conduit, conduit.key.wrong")]) == 403)
            // Without `conduit` the 101 selected no subprotocol, which a browser fails after the
            // id has replaced its other socket: refused before.
            #expect(try await status(host, "/7/0", [("Sec-WebSocket-Protocol", "conduit.key.\(host.sharedKey)")]) == 400)
            #expect(try await client.request(.init(headers: ["route": "echo"])).headers["route"] == "echo", "not replaced")
        }
    }

    @Test("ids: uint64 or 1–64 of [A-Za-z0-9._-], else 400", arguments: [
        ("/18446744073709551615/0", 101), ("/a.b_c-D/x", 101), ("/\(String(repeating: "a", count: 64))/0", 101),
        ("/\(String(repeating: "a", count: 65))/0", 400), ("/a%20b/0", 400), ("/1", 400), ("/1/2/3", 400), ("//0", 400), ("/1/é", 400),
    ])
    func ids(path: String, expected: Int) async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            #expect(try await status(host, path + "?key=\(host.sharedKey)") == expected)
        }
    }

    @Test func notAnUpgradeIs400() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            #expect(try await status(host, host.path(), omitKey: true) == 400)
            let client = try await RawTCPClient.connect(port: host.port)
            try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await client.readUntilClosed()
            #expect(String(buffer: response).hasPrefix("HTTP/1.1 400"))
        }
    }

    /// RFC 6455 §4.4: another version is refused with the one spoken, so the client can retry
    /// (it was 400 without it).
    @Test func anotherWebSocketVersionIsToldVersion13() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            let client = try await RawTCPClient.connect(port: host.port)
            try await client.send(
                "GET \(host.path()) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            let response = String(buffer: try await client.readUntilClosed()).lowercased()
            #expect(response.hasPrefix("http/1.1 426"), "\(response.prefix(100))")
            #expect(response.contains("sec-websocket-version: 13"), "\(response)")
        }
    }

    /// Configured origins were matched as text: one written with capitals, a trailing slash or
    /// the default port never matched the origin a browser sends. And the localhost check read
    /// only up to the first `:` or `]`, so `http://localhost:80@evil.com` passed.
    @Test func originsOutsideTheAllowListAre403() async throws {
        let yaml = "server:\n  allowedOrigins: [https://app.example, 'https://Other.Example:443/']\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { (host: TestHost) async throws in
            for origin in ["null", "http://localhost:3000", "http://127.0.0.1", "http://[::1]:8080", "https://app.example", "HTTP://LOCALHOST",
                           "https://other.example"] {
                #expect(try await status(host, host.path(), [("Origin", origin)]) == 101, "\(origin)")
            }
            for origin in ["https://evil.example", "http://localhost.evil.example", "https://app.example.evil", "http://localhost:80@evil.com",
                           "http://[::1]evil.com", "http://[::1].evil.com", "http://[::1", "https://other.example:8443", "http://app.example"] {
                #expect(try await status(host, host.path(), [("Origin", origin)]) == 403, "\(origin)")
            }
            #expect(try await status(host, host.path(), [("Origin", "http://localhost"), ("Origin", "https://evil.example")]) == 403, "two origins")
        }
    }

    /// RFC 6455 §4.2.1 with RFC 9110 §7.8: `Upgrade` is a list. Only a line that was exactly
    /// `websocket` was served, though the docs allow up to 8 protocols.
    @Test func anUpgradeListingWebSocketAmongOthersIsServed() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            for upgrade in ["websocket, h2c", "h2c, WebSocket"] {
                #expect(try await rawStatus(host, head(host, upgrade: upgrade)) == 101, "\(upgrade)")
            }
        }
    }

    /// What RFC 6455 §4.2.1 requires of a handshake and was not checked: a nonce of 16 bytes,
    /// HTTP/1.1, a Host header, and only one (RFC 9112 §3.2: 400 for two lines or a list).
    /// Each was served (101).
    @Test func aHandshakeRFC6455RefusesIs400() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            #expect(try await rawStatus(host, head(host, nonce: "x")) == 400, "a nonce that is not 16 bytes in base64")
            #expect(try await rawStatus(host, head(host, nonce: "dGhlIHNhbXBsZQ==")) == 400, "a nonce of 10 bytes")
            #expect(try await rawStatus(host, head(host, version: "HTTP/1.0")) == 400, "HTTP/1.0")
            #expect(try await rawStatus(host, head(host, hosts: [])) == 400, "no Host")
            #expect(try await rawStatus(host, head(host, hosts: ["127.0.0.1", "evil.example"])) == 400, "two Host lines")
            #expect(try await rawStatus(host, head(host, hosts: ["127.0.0.1", "127.0.0.1"])) == 400, "the same Host twice")
            #expect(try await rawStatus(host, head(host, hosts: ["127.0.0.1, evil.example"])) == 400, "a list in Host")
            #expect(try await rawStatus(host, head(host)) == 101, "the same handshake, complete")
        }
    }

    /// RFC 9112 §3.2.2: a server accepts the absolute form of a request target. It was 400,
    /// the path read as the whole URL.
    @Test func aTargetInAbsoluteFormIsServed() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            #expect(try await rawStatus(host, head(host, target: "http://127.0.0.1:\(host.port)\(host.path())")) == 101)
        }
    }

    private func head(
        _ host: TestHost, target: String? = nil, version: String = "HTTP/1.1", upgrade: String = "websocket",
        nonce: String = "dGhlIHNhbXBsZSBub25jZQ==", hosts: [String] = ["127.0.0.1"]
    ) -> String {
        "GET \(target ?? host.path()) \(version)\r\n" + hosts.map { "Host: \($0)\r\n" }.joined()
            + "Upgrade: \(upgrade)\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: \(nonce)\r\n\r\n"
    }

    private func rawStatus(_ host: TestHost, _ head: String) async throws -> Int {
        let client = try await RawTCPClient.connect(port: host.port)
        defer { client.channel.close(promise: nil) }
        try await client.send(head)
        let response = try await client.read(count: 12)
        return Int(response.getString(at: response.readerIndex + 9, length: 3) ?? "") ?? -1
    }

    @Test func aClientWithoutTheKeyLearnsNothingElse() async throws {
        try await TestHost.run(catalog: .hostTests) { (host: TestHost) async throws in
            // Bad ids and a wrong key: the key check comes first.
            #expect(try await status(host, "/bad!id/0?key=wrong") == 403)
            // Bad origin with a good key: origin first.
            #expect(try await status(host, host.path(), [("Origin", "https://evil.example")]) == 403)
        }
    }
}
