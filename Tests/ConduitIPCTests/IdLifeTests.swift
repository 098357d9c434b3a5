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
