import ConduitHost
import ConduitTesting
import NIOCore
import Testing

/// A key given as `?key=` reads the same on both listeners: a `+` in it is a `+` (a key has no
/// spaces; base64 keys have pluses). The IPC listener read it as a space, as in a form, and
/// refused with 403 a key the WebSocket listener accepted.
@Suite("The key in a query", .serialized, .timeLimit(.minutes(1)))
struct KeyInQueryTests {
    @Test func aPlusInTheKeyIsAPlusOnBothListeners() async throws {
        let key = "base64+key/with=signs"
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_SHARED_KEY": key]) { host in
            let raw = try await RawTCPClient.connect(port: host.ipcPort)
            try await raw.send("GET /internal.conduit.status?key=base64+key/with%3Dsigns HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let answer = String(buffer: try await raw.readUntilClosed())
            #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer.prefix(200))")
            #expect(try await RawTCPClient.handshakeStatus(port: host.port, path: "/plus/0?key=base64+key/with%3Dsigns") == 101)
        }
    }
}
