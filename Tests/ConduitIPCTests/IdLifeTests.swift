import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// SPEC §3 "One life for every id": an id named only over IPC expires like one whose socket
/// closed, so the state handlers keep for it (sockets, buffers) is released.
@Suite("Ids named only over IPC", .serialized, .timeLimit(.minutes(1)))
struct IdLifeTests {
    static let yaml = "limits:\n  clientGraceSeconds: 1\nroutes:\n  - route: stateful\n    handler: stateful\n"

    @Test func anIdNamedInAnInvocationExpiresAfterTheGracePeriod() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            for index in 0..<20 {
                let response = try await host.ipc().request(.POST, "/stateful?id=ipc-only-\(index)", body: ByteBuffer(string: "x"))
                #expect(response.status == .ok)
            }
            try await waitUntil { (0..<20).allSatisfy { host.client("ipc-only-\($0)") == nil } }
            // Each id held one push; it was released, counted, at expiry.
            #expect(host.host.directory.budget.snapshot.dropped["expired"] == 20)
            let expired = StatefulHandler.expired.withLock { $0 }
            #expect((0..<20).allSatisfy { expired.contains("ipc-only-\($0)") }, "handlers are told, so they close what they hold")
            #expect(host.host.directory.budget.usedBytes == 0)
        }
    }
}

extension IdLifeTests {
    /// Naming an id over IPC costs no descriptor, so the ids the host holds are bounded
    /// (`maxClients`): an invocation naming a new one past the bound is answered 503, while
    /// the ids already held still answer.
    @Test func anInvocationNamingANewIdPastMaxClientsIsAnswered503() async throws {
        let yaml = "limits:\n  maxClients: 3\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            for index in 0..<3 {
                #expect(try await host.ipc().request(.POST, "/echo?id=held-\(index)", body: ByteBuffer(string: "x")).status == .ok)
            }
            let refused = try await host.ipc().request(.POST, "/echo?id=one-more", body: ByteBuffer(string: "x"))
            #expect(refused.status == .serviceUnavailable)
            #expect(String(buffer: refused.body).contains("limits.maxClients"), "\(String(buffer: refused.body))")
            #expect(host.client("one-more") == nil)
            #expect(try await host.ipc().request(.POST, "/echo?id=held-0", body: ByteBuffer(string: "x")).status == .ok)
        }
    }
}
