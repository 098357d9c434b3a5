import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Synchronization
import Testing

/// `whenWritable` (SPEC §3 backpressure): callbacks wait for a congested id to drain.
@Suite("Waiting for a congested id", .timeLimit(.minutes(1)))
struct WritableWaitTests {
    static let yaml = """
        limits:
          congestionHighWaterBytes: 65536
          congestionLowWaterBytes: 16384
        routes:
          - route: echo
            handler: echo
        """

    /// An id keeps 64 callbacks at most; past that the oldest is called early (it finds the
    /// id still congested and waits again). Callbacks of sources that ended meanwhile (a TLS
    /// connection closed while paused, each holding its channel) stayed until the id drained or
    /// expired: a client that never read grew the list without end.
    @Test func anIdKeepsABoundedNumberOfCallbacksTheOldestCalledFirst() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .hostTests) { host in
            let directory = host.host.directory
            let id = ClientID("congested")!
            for n in 0..<4 { directory.push(Message(headers: ["route": "fill", "n": "\(n)"], payload: ByteBuffer(repeating: 1, count: 30_000)), to: id, delivery: .reliable) }
            #expect(directory.isCongested(id))
            let called = Mutex<[Int]>([])
            for n in 0..<100 { directory.whenWritable(id) { called.withLock { $0.append(n) } } }
            try await waitUntil { called.withLock { $0.count } == 36 }
            #expect(called.withLock { $0 } == Array(0..<36), "the oldest 36 called early")
            // Drained by its socket: the 64 kept are called.
            let client = try await host.connect(client: "congested")
            for _ in 0..<4 { _ = try await client.nextMessage() }
            try await waitUntil { called.withLock { $0.count } == 100 }
            #expect(called.withLock { Set($0) } == Set(0..<100))
        }
    }

    /// A queue configured smaller than the high-water mark is congested at half its bytes, as
    /// at half its messages: with the mark alone a stream was never told to pause, and its
    /// reliable pushes were refused (the stream ended) once the queue was full.
    @Test func aQueueSmallerThanTheMarkIsCongestedAtHalfItsBytes() async throws {
        let yaml = "limits:\n  pushBufferBytes: 65536\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let directory = host.host.directory
            let id = ClientID("small-queue")!
            #expect(directory.push(Message(headers: ["route": "fill"], payload: ByteBuffer(repeating: 1, count: 40_000)), to: id, delivery: .reliable).isAccepted)
            #expect(directory.isCongested(id), "40 KB of a 64 KiB buffer, under the 1 MiB mark")
            let woken = Mutex(false)
            directory.whenWritable(id) { woken.withLock { $0 = true } }
            _ = try await host.connect(client: "small-queue").nextMessage()
            try await waitUntil { woken.withLock { $0 } }
        }
    }
}
