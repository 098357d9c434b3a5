@testable import ConduitHost
import Testing

/// An id's resume state ends when a plain connection takes the id or the id expires; a socket
/// of the id on another event loop goes on with the read it is in (its close is queued on its
/// own loop) and records the client positions of that read on the ended state. Those charged
/// the host's budget for positions kept above an open chunked request, and nothing ever gave
/// it back: a client with the key could repeat it until the budget was gone.
@Suite("Resume: an ended state")
struct EndedResumeStateTests {
    @Test func positionsRecordedAfterTheEndTakeNothingFromTheBudget() {
        let budget = BufferBudget(limit: 256 << 20, metrics: HostMetrics())
        let state = ResumeState(windowLimit: 4 << 20, budget: budget)
        let writer = Writer()
        _ = state.resume(ResumeRequest(received: 0, epoch: nil), writer: writer)
        defer { withExtendedLifetime(writer) {} }
        state.end()
        #expect(budget.usedBytes == 0)
        // A chunk opens a request at position 1; cancellations above it are kept until it ends.
        _ = state.admit(1, isChunk: true, openFrom: nil, from: ObjectIdentifier(writer))
        for position in UInt64(2)...4000 { _ = state.admit(position, isChunk: false, openFrom: 1, from: ObjectIdentifier(writer)) }
        #expect(budget.usedBytes == 0, "\(budget.usedBytes) bytes charged to an ended state")
    }

    private final class Writer {}
}
