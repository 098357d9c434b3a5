import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// What happens to 10,000 pushes to an id while the socket server is paused (issue 3's
/// closing note): the buffer keeps the newest `pushBufferMessages`, counts the rest as
/// dropped, and hands the kept ones, in order, to the id's socket after resume.
@Suite("Pushes while paused", .serialized, .timeLimit(.minutes(1)))
struct PausedPushTests {
    @Test func tenThousandPushesToAPausedId() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let ipc = host.ipc()
            let socket = try await host.connect(client: "p")
            _ = try await ipc.request(.POST, "/internal.conduit.stop")
            try await socket.waitUntilClosed()

            let total = 10_000
            var kept = 0
            var keptDroppingOldest = 0
            let clock = ContinuousClock()
            let elapsed = clock.measure {
                for n in 1...total {
                    switch host.host.directory.push(numberedPush(n), to: ClientID("p")!) {
                    case .buffered: kept += 1
                    case .bufferedDroppingOldest: keptDroppingOldest += 1
                    case .sent: Issue.record("push \(n) was sent while paused")
                    case .dropped(let cause): Issue.record("push \(n) was dropped: \(cause)")
                    }
                }
            }
            let limit = 4096
            let snapshot = try #require(host.client("p"))
            #expect(snapshot.buffered == limit)
            #expect(snapshot.dropped == total - limit)
            #expect(kept == limit)
            #expect(keptDroppingOldest == total - limit)

            let port = try await ipc.request(.POST, "/internal.conduit.start").decode(DataEnvelope<StatusBody>.self).data.port
            let again = try await TestWebSocketClient.connect(port: try #require(port), path: host.path(client: "p"))
            var delivered = 0
            var inOrder = true
            for expected in (total - limit + 1)...total {
                let message = try await again.nextMessage()
                inOrder = inOrder && message.headers["n"] == "\(expected)"
                delivered += 1
            }
            #expect(inOrder)
            #expect(host.client("p")?.buffered == 0)
            print("paused pushes: \(total) made in \(elapsed), buffered \(snapshot.buffered), dropped \(snapshot.dropped), delivered after resume \(delivered) (in order: \(inOrder))")
            try await again.close()
        }
    }
}
