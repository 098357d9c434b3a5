@testable import ConduitHost
import ConduitWire
import NIOCore
import Testing

/// A replay's batch was bounded by the bytes of the log alone: the parts of a large message,
/// kept apart from it, counted nothing, and one batch was all of them (here 3 MiB), written at
/// once to a socket however little it took, and held there by a client that read nothing,
/// outside the budget once acknowledged.
@Suite("Resume: a replay's batch")
struct ReplayBatchBoundTests {
    @Test func aLargeMessagesPartsGoOutAboutABatchsBytesAtATime() throws {
        let state = ResumeState(windowLimit: 8 << 20, budget: BufferBudget(limit: 256 << 20, metrics: HostMetrics()))
        let (first, next) = (Writer(), Writer())
        let epoch = try #require(state.resume(ResumeRequest(received: 0, epoch: nil), writer: first).message.headers["epoch"])
        let large = Message(headers: ["route": "large"], payload: ByteBuffer(repeating: 1, count: 3 << 20))
        let parts = try #require(state.stamp(splitting: large, writer: ObjectIdentifier(first)) as [Message]?)
        #expect(parts.count > 40)
        var replay = state.resume(ResumeRequest(received: 0, epoch: epoch), writer: next).replay
        var batches = 0
        while let batch = replay.nextBatch() {
            let bytes = batch.reduce(0) { $0 + $1.encodedSize }
            #expect(batch.count == 1 || bytes <= ResumeState.Replay.batchBound.bytes, "a batch of \(batch.count) parts, \(bytes) bytes")
            batches += 1
        }
        #expect(batches >= parts.count / 2)
        withExtendedLifetime((first, next)) {}
    }

    private final class Writer {}
}
