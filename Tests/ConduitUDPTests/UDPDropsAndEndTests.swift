import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitUDP
import ConduitWire
import Foundation
import NIOCore
import Testing

/// What the audit of the UDP handler found unaccounted for: datagrams the kernel dropped and
/// those over the size limit (SPEC §3: every drop counted per socket and in diagnostics), and
/// a socket gone under its reading client.
@Suite("UDP: drops counted, ends told", .serialized, .timeLimit(.minutes(2)))
struct UDPDropsAndEndTests {
    /// With a tiny receive buffer the kernel drops most of a burst; it is counted there, and
    /// nothing goes missing between the two counts: on the loopback every datagram sent is
    /// either received or dropped by the kernel.
    @Test func datagramsTheKernelDropsAreCounted() async throws {
        let yaml = "routes:\n  - route: udp.*\n    handler: udp\n    options: {receiveBufferBytes: 1024, maxDatagramBytes: 2048}\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-kernel")
            let port = try await client.bindAndRead()
            let peer = try await UDPPeer()
            let sent = 5_000
            for n in 0..<sent { try await peer.send([UInt8](repeating: UInt8(truncatingIfNeeded: n), count: 1_000), to: port) }
            try await waitUntil {
                let state = try await client.udpState(["route": "udp.getState", "token": "state"])
                return state.received + state.droppedByKernel == sent
            }
            let state = try await client.udpState(["route": "udp.getState", "token": "state"])
            #expect(state.droppedByKernel > 0, "a 1 KiB buffer took all of \(sent) datagrams")
            let details = try await Self.routeDetails(host)
            #expect(details["droppedByKernel"] == .number(state.droppedByKernel))
            try await peer.close()
        }
    }

    @Test func datagramsOverTheLimitAreCountedInDiagnostics() async throws {
        let yaml = "routes:\n  - route: udp.*\n    handler: udp\n    options: {maxDatagramBytes: 16}\n"
        try await TestHost.run(yaml: yaml, catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-large")
            let port = try await client.bindAndRead()
            let peer = try await UDPPeer()
            for _ in 0..<3 { try await peer.send([UInt8](repeating: 1, count: 17), to: port) }
            try await peer.send([1], to: port)
            _ = try await client.nextMessage(route: "udp.data")
            #expect(try await client.udpState(["route": "udp.getState", "token": "state"]).droppedTooLarge == 3)
            // Still counted once the socket is gone.
            _ = try await client.request(Message(headers: ["route": "udp.close", "token": "c"]))
            let details = try await Self.routeDetails(host)
            #expect(details["droppedTooLarge"] == .number(3))
            #expect(details["sockets"] == .number(0))
            try await peer.close()
        }
    }

    /// A send the kernel refuses with an error NIO takes as fatal closes the socket: its
    /// reading client was told nothing, and waited for datagrams that no longer came.
    @Test func aSocketClosedByASendErrorTellsItsReader() async throws {
        try await TestHost.run(yaml: "routes:\n  - route: udp.*\n    handler: udp\n", catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-closed")
            _ = try await client.bindAndRead()
            // No SO_BROADCAST: EACCES, which NIO closes the socket on.
            let refused = try await client.request(Message(headers: ["route": "udp.send", "address": "255.255.255.255", "port": "9", "token": "s"], payload: [1]))
            #expect(refused.headers["error"] == "UnavailableError")
            #expect(String(buffer: refused.payload).contains("the socket closed"), "\(String(buffer: refused.payload))")
            let end = try await client.nextMessage(route: "udp.end")
            #expect(end.headers["reason"]?.contains("could not be sent") == true, "\(end.headers)")
            #expect(try await client.request(Message(headers: ["route": "udp.getState", "token": "g"])).headers["error"] == "NotFoundError")
        }
    }

    /// A reload that changes the route stops its handler and closes every id's socket: each
    /// reader is told.
    @Test func aReloadThatReplacesTheHandlerTellsEachReader() async throws {
        try await TestHost.run(yaml: "routes:\n  - route: udp.*\n    handler: udp\n", catalog: .udpTests) { host in
            let client = try await host.connect(client: "u-reload")
            _ = try await client.bindAndRead()
            try "routes:\n  - route: udp.*\n    handler: udp\n    options: {maxSockets: 10}\n".write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            _ = try await host.host.reload()
            let end = try await client.nextMessage(route: "udp.end")
            #expect(end.headers["reason"]?.contains("bind again") == true, "\(end.headers)")
        }
    }

    /// The `details` of the `udp.*` route in `internal.conduit.diagnostics`.
    static func routeDetails(_ host: TestHost) async throws -> [String: DiagnosticValue] {
        let ipc = IPCEndpoint(port: try #require(host.endpoints.ipcPort), sharedKey: host.sharedKey)
        return try await ipc.diagnostics().routes.first { $0.route == "udp.*" }?.details ?? [:]
    }
}
