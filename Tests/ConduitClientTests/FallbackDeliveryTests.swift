import ConduitClient
import ConduitHost
import ConduitKit
import Foundation
import ConduitTesting
import ConduitWire
import NIOCore
import Synchronization
import Testing

/// What the client hands the application while its socket is down (docs/client-swift.md).
@Suite("Client: deliveries while the socket is down", .timeLimit(.minutes(2)))
struct FallbackDeliveryTests {
    /// How many deliveries ran at once, at most.
    final class Overlaps: Sendable {
        private let state = Mutex((inside: 0, most: 0, received: 0))

        func enter() { state.withLock { $0.inside += 1; $0.most = max($0.most, $0.inside) } }
        func leave() { state.withLock { $0.inside -= 1; $0.received += 1 } }
        var most: Int { state.withLock { $0.most } }
        var received: Int { state.withLock { $0.received } }
    }

    /// The fallback stream's pushes are delivered from the task that reads it, a
    /// `sendOrFallback` reply from its caller's task: the handler ran on both at once.
    @Test func theReceiveHandlerGetsOneMessageAtATime() async throws {
        try await TestHost.run(yaml: TestHost.clientYAML, catalog: .clientTests) { host in
            let id = ClientID("one-at-a-time")!
            let conduit = host.client(id: id.rawValue)
            let recorder = Recorder(conduit)
            let overlaps = Overlaps()
            conduit.receive { _ in
                overlaps.enter()
                usleep(1_000)  // a handler that takes a while
                overlaps.leave()
            }
            try await conduit.connect()
            let ipc = try #require(conduit.ipc)
            try await ipc.stop()
            try await recorder.waitFor { $0.isClose }
            try await waitUntil { host.client(id.rawValue)?.streaming == true }
            // Few: each delivery holds a thread of the cooperative pool for its millisecond.
            let rounds = 50
            for n in 0..<rounds {
                for m in 0..<3 { host.host.directory.push(numberedPush(n * 3 + m), to: id) }
                #expect(try await conduit.sendOrFallback(["route": "echo", "token": "e\(n)"]) == .ipc)
            }
            try await waitUntil(timeout: .seconds(30)) { overlaps.received == rounds * 4 }
            #expect(overlaps.most == 1, "the handler ran \(overlaps.most) times at once")
            try await ipc.start()
            conduit.close()
        }
    }

    /// With resume, a message `sendOrFallback` sends over IPC (the window full while the socket
    /// is down) kept the application's own `pos` and `ack`; the host echoed them, and the
    /// reply was read as host position 999 (later host messages dropped as duplicates) and an
    /// acknowledgement of client positions the host never had. Position 999, never sent, made
    /// the host reset the id at the reconnect: its window let go, the client told `reset`.
    @Test func anIPCReplyIsNotTakenForResumePositions() async throws {
        try await TestHost.run(yaml: TestHost.clientYAML, catalog: .clientTests) { host in
            let conduit = host.client(id: "ipc-positions", resume: true)
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let ipc = try #require(conduit.ipc)
            try await ipc.stop()
            try await recorder.waitFor { $0.isClose }
            // Echoes kept while the socket is down, until the window (4 MiB) is full.
            var keeping = 0
            while try conduit.send(["route": "echo", "n": "\(keeping)"], payload: ByteBuffer(repeating: 1, count: 1 << 20)) { keeping += 1 }
            let kept = keeping
            #expect(kept > 0)
            #expect(try await conduit.sendOrFallback(["route": "echo", "token": "over-ipc", "pos": "999", "ack": "5"]) == .ipc)
            let reply = try #require(recorder.messages.first { $0.headers.correlation?.value == "over-ipc" })
            #expect(reply.headers["pos"] == nil && reply.headers["ack"] == nil, "\(reply.headers)")
            try await ipc.start()
            // Generous: 4 MiB sent again and echoed, on event loops a full run keeps busy (it
            // took 28–43 s of the test's time there, 0.5–1 s alone; 20 s was once too few).
            try await waitUntil(timeout: .seconds(60)) { recorder.messages.filter { $0.headers["n"] != nil }.count == kept }
            #expect(recorder.messages.compactMap { $0.headers["n"] } == (0..<kept).map(String.init))
            #expect(recorder.count { if case .resumeReset = $0 { true } else { false } } == 0, "the reconnect reset the id")
            conduit.close()
        }
    }
}
