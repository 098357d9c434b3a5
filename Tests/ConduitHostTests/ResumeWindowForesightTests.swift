@testable import ConduitHost
import ConduitWire
import NIOCore
import Testing

/// The window foresees its memory before it keeps a message, so that it charges the host's
/// budget once (`settle(_:foreseen:)` asserts the foresight in debug builds, the tests' build).
/// A message whose payload was written apart from its frame and kept as a copy went into the
/// log in two pieces: the log's room was foreseen for the two together, and the pieces,
/// appended one by one, grew the log where the foresight had it reuse its acknowledged start
/// (the long chaos run stopped on the assertion in 2 of 16 runs: foreseen 140,761, was
/// 144,857). Such a payload (a slice of a larger buffer) is copied into its frame now, and
/// goes into the log with it in one piece.
@Suite("Resume window: foresight")
struct ResumeWindowForesightTests {
    /// The case the long chaos run met, built exactly: a log of 4 KiB holding two messages of
    /// 1,800 bytes (a payload sliced from a larger buffer), the first acknowledged. A third fits
    /// only if the log reuses its acknowledged start, which `makeRoom` foresaw; appended in two
    /// pieces (frame, then payload), the frame fit at the end and the payload then grew the log
    /// to 8 KiB.
    @Test func aCopiedPayloadGoesIntoTheLogWithItsFrame() throws {
        let large = ByteBuffer(repeating: 3, count: 64 * 1024)
        func message(payloadBytes: Int) -> Message {
            Message(headers: ["route": "test.push"], payload: large.getSlice(at: 0, length: payloadBytes)!)
        }
        func newState() -> (ResumeState, Writer) {
            let state = ResumeState(windowLimit: 4 << 20, budget: BufferBudget(limit: 256 << 20, metrics: HostMetrics()))
            let writer = Writer()
            _ = state.resume(ResumeRequest(received: 0, epoch: nil), writer: writer)
            return (state, writer)
        }
        // The message's bytes besides its payload (its headers and `pos`), from a probe.
        let (probe, probeWriter) = newState()
        var probeFrames = OutboundFrames()
        let overhead = try #require(try probe.stamp(message(payloadBytes: 1500), writer: ObjectIdentifier(probeWriter), into: &probeFrames)).appended.encodedBytes - 1500

        let (state, writer) = newState()
        let sent = (1...3).map { _ in message(payloadBytes: 1800 - overhead) }
        for (index, message) in sent.enumerated() {
            var frames = OutboundFrames()
            let stamped = try #require(try state.stamp(message, writer: ObjectIdentifier(writer), into: &frames))
            #expect(stamped.appended.encodedBytes == 1800 && !stamped.appended.payloadIsApart, "copied into its frame")
            if index == 1 { state.acknowledge(1, from: ObjectIdentifier(writer)) }
        }
        #expect(state.snapshot.windowMemoryBytes < 8192, "the log reused its start: \(state.snapshot)")
        let greeting = state.resume(ResumeRequest(received: 1, epoch: state.snapshot.epoch), writer: Writer())
        #expect(greeting.replay.messages.map(\.payload) == sent.dropFirst().map(\.payload))
    }

    enum PayloadKind: CaseIterable {
        /// Under 1 KiB: kept in its frame.
        case inline
        /// 1–3 KiB in a buffer of its own: written apart and kept as it is.
        case own
        /// 1–3 KiB sliced from a larger buffer: copied into its frame (written apart, it would
        /// keep the larger buffer), and into the log with it.
        case sliced
    }

    /// Message kinds, payload sizes, header lengths and acknowledgement lags (0–7 messages
    /// behind) in sweeps, each memory foreseen checked as the message is kept; what is left
    /// unacknowledged then replays intact (the log's pieces in place). Sizes step by large
    /// primes, so consecutive messages differ; `stride` makes each sweep another sequence.
    /// These sweeps do not meet the case above (its window is a frame's bytes wide), which is
    /// why it is built exactly.
    @Test(arguments: [[PayloadKind.sliced], PayloadKind.allCases])
    func everyKeptMessageIsChargedWhatItWasForeseenToTake(kinds: [PayloadKind]) throws {
        for stride in [7919, 104_729, 15_485_863] { try sweep(kinds: kinds, stride: stride) }
    }

    private func sweep(kinds: [PayloadKind], stride: Int) throws {
        let metrics = HostMetrics()
        let budget = BufferBudget(limit: 256 << 20, metrics: metrics)
        let state = ResumeState(windowLimit: 4 << 20, budget: budget)
        let writer = Writer()
        _ = state.resume(ResumeRequest(received: 0, epoch: nil), writer: writer)
        let large = ByteBuffer(bytes: (0..<(64 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        var unacknowledged: [Message] = []
        var acknowledged: UInt64 = 0
        for n in 1...10_000 {
            let step = n &* stride
            let offset = step % 1024
            let size = 1024 + step % 2048
            let payload =
                switch kinds[(n / 3) % kinds.count] {
                case .inline: large.getSlice(at: offset, length: step % 900)!
                case .own: ByteBuffer(buffer: large.getSlice(at: offset, length: size)!)
                case .sliced: large.getSlice(at: offset, length: size)!
                }
            let padding = String(repeating: "p", count: step % 97)
            let message = Message(headers: ["route": "test.push", "n": "\(n)", "pad": padding], payload: payload)
            var frames = OutboundFrames()
            #expect(try state.stamp(message, writer: ObjectIdentifier(writer), into: &frames) != nil)
            unacknowledged.append(message)
            let lag = (n &* 5) % 8
            if unacknowledged.count > lag {
                acknowledged += UInt64(unacknowledged.count - lag)
                unacknowledged.removeFirst(unacknowledged.count - lag)
                state.acknowledge(acknowledged, from: ObjectIdentifier(writer))
            }
        }
        #expect(state.snapshot.sent == 10_000)
        let greeting = state.resume(ResumeRequest(received: acknowledged, epoch: state.snapshot.epoch), writer: Writer())
        #expect(greeting.replay.messages.map { $0.headers["n"] } == unacknowledged.map { $0.headers["n"] })
        #expect(greeting.replay.messages.map(\.payload) == unacknowledged.map(\.payload), "replayed intact")
    }

    private final class Writer {}
}

extension ResumeState.Replay {
    /// Every message of the replay, batch after batch (a copy of it is gone through).
    var messages: [Message] {
        var replay = self
        var messages: [Message] = []
        while let batch = replay.nextBatch() { messages.append(contentsOf: batch) }
        return messages
    }
}
