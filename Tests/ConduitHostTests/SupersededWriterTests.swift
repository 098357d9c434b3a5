@testable import ConduitHost
import ConduitWire
import Testing

/// A socket replaced by a reset (a new client instance, no epoch) reads on until its close
/// runs on its own event loop. The positions and acknowledgements of that read were recorded
/// in the new epoch: the new client's first requests, positions 1 and up, were dropped as
/// duplicates and never dispatched (SPEC §9: after a reset the record of client positions
/// starts again, `ack: 0`), and its acknowledgement could release the new epoch's window.
/// Only the id's current writer's count now. (Over real sockets the replaced socket's last
/// read has to overlap the reset; an audit saw it 4 times in 4 against a debug host.)
@Suite("Resume: a replaced socket's last read")
struct SupersededWriterTests {
    @Test func aReplacedWritersPositionsAndAcknowledgementsCountForNothing() throws {
        let state = ResumeState(windowLimit: 4 << 20, budget: BufferBudget(limit: 256 << 20, metrics: HostMetrics()))
        let (replaced, next) = (Writer(), Writer())
        _ = state.resume(ResumeRequest(received: 0, epoch: nil), writer: replaced)
        let greeting = state.resume(ResumeRequest(received: 0, epoch: nil), writer: next)
        #expect(greeting.message.headers["reset"] == "true")
        var frames = OutboundFrames()
        _ = try state.stamp(Message(headers: ["route": "push"]), writer: ObjectIdentifier(next), into: &frames)
        #expect(state.admit(1_000_000, isChunk: false, openFrom: nil, acknowledging: 1, from: ObjectIdentifier(replaced)) == .superseded)
        state.acknowledge(1, from: ObjectIdentifier(replaced))
        #expect(state.snapshot.acknowledged == 0, "the new epoch's window is the new socket's to release")
        #expect(state.admit(1, isChunk: false, openFrom: nil, from: ObjectIdentifier(next)) == .admitted)
        withExtendedLifetime((replaced, next)) {}
    }

    private final class Writer {}
}
