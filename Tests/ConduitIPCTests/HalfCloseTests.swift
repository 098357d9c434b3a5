import ConduitHost
import ConduitTesting
import NIOCore
import Testing

/// A caller that sends its request and then shuts down its side of the connection (`SHUT_WR`,
/// as `nc -N` and some HTTP/1.0 clients do) still reads the answer: SwiftNIO closed the
/// connection on the end of input, so an answer given later (a control route, an invocation)
/// was lost while the operation still ran.
@Suite("IPC: a caller that half-closes", .serialized, .timeLimit(.minutes(1)))
struct HalfCloseTests {
    @Test(arguments: ["GET /internal.conduit.status", "POST /echo?id=half"])
    func theAnswerStillArrivesAfterTheCallersEndOfInput(_ request: String) async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let raw = try await RawTCPClient.connect(port: host.ipcPort)
            try await raw.send("\(request) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\nContent-Length: 5\r\n\r\nhello")
            try await raw.channel.close(mode: .output)
            let answer = String(buffer: try await raw.readUntilClosed(timeout: .seconds(30)))
            #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer.prefix(200))")
        }
    }

    /// Nothing asked: the connection is closed at once, not held until the idle timeout.
    @Test func aCallerThatSentNothingIsClosed() async throws {
        try await TestHost.run(yaml: "limits:\n  ipcIdleTimeoutSeconds: 600\nroutes:\n  - route: echo\n    handler: echo\n", catalog: .ipcTests) { host in
            let raw = try await RawTCPClient.connect(port: host.ipcPort)
            try await raw.channel.close(mode: .output)
            let answer = try await raw.readUntilClosed(timeout: .seconds(30))
            #expect(answer.readableBytes == 0)
        }
    }
}
