import ConduitHost
import ConduitTesting
import NIOCore
import NIOPosix
import Testing

/// A host that can't start lets go of everything it had started: the IPC listener, bound
/// before the WebSocket port was found taken, stayed open, answering IPC for a host that was
/// not running and holding its port.
@Suite("A host that fails to start", .serialized, .timeLimit(.minutes(1)))
struct FailedStartTests {
    @Test func aTakenWebSocketPortLeavesNoIPCListenerBehind() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let taken = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        // Below the ephemeral range: a port 0 gave, freed, was once taken by another test's bind
        // of port 0 before the check below, which then found something listening.
        let ipcPort = try NATSServerProcess.freePort()
        let yaml = "server:\n  port: \(try #require(taken.localAddress?.port))\n  ipcPort: \(ipcPort)\nroutes:\n  - route: echo\n    handler: echo\n"
        await #expect(throws: (any Error).self) {
            try await TestHost.run(yaml: yaml, catalog: .hostTests) { _ in }
        }
        try await taken.close()
        // Refused: nothing listens there any more.
        await #expect(throws: (any Error).self) {
            let raw = try await RawTCPClient.connect(port: ipcPort)
            try await raw.close()
        }
    }
}
