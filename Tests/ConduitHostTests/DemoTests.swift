import Foundation
import Testing

/// `conduit demo udp|ai` as a new user runs them: on the embedded configuration, end to end.
@Suite("conduit demo", .serialized, .timeLimit(.minutes(2)))
struct DemoTests {
    @Test func udpDemoDeliversEveryDatagramAndSendsOneBack() async throws {
        let result = try await ConduitProcess.run(["demo", "udp", "--count", "7"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.components(separatedBy: "push: udp.data from 127.0.0.1:").count - 1 == 7, "\(result.stdout)")
        #expect(result.stdout.contains("\"datagram 7\""))
        #expect(result.stdout.contains("udp.send \"thanks\""))
        #expect(result.stdout.contains(#""sent":1"#), "\(result.stdout)")
        #expect(result.stdout.contains("done: 7 of 7 datagrams delivered"))
    }

    @Test func aiDemoStreamsTokensUntilComplete() async throws {
        let result = try await ConduitProcess.run(["demo", "ai", "--max-tokens", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("done: 20 tokens with complete:true"), "\(result.stdout)")
    }

    @Test func aDemoOnABrokenConfigurationFailsWithItsPosition() async throws {
        let path = NSTemporaryDirectory() + "conduit-demo-\(UUID().uuidString).yaml"
        try "routes:\n  - route: echo\n    handler: nope\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await ConduitProcess.run(["demo", "udp", "--config", path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(path):2:5: error: unknown handler kind"), "\(result.stderr)")
    }
}
