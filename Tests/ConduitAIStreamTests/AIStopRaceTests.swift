import ConduitAIStream
import ConduitKit
import ConduitKitTesting
import ConduitWire
import Testing

/// A reload swaps the table, then stops the old handler: a generate that found the old table
/// just before reached the handler after its stop had aborted the streams it knew, and ran to
/// its end untracked, pushing tokens from a handler no table held (`ai.chat.abort` went to the
/// new one: `NotFoundError`). It is refused now, as UDP's bind is.
@Suite("AI stream: a generate racing the handler's stop")
struct AIStopRaceTests {
    @Test func aGenerateAfterStopIsRefusedAndPushesNothing() async throws {
        let bench = try HandlerTestBench<AIStreamHandler>(options: AIOptions(), mount: "ai.*")
        try await bench.start()
        await bench.handler.stop()
        let token = bench.send("chat.generate", headers: ["prompt": "hello"])
        let reply = try await bench.reply(to: token)
        guard case .failure(let error) = reply else {
            Issue.record("a stream started after the handler stopped: \(reply)")
            return
        }
        #expect(error.kind == .unavailable, "\(error)")
        #expect(bench.pushes.all.isEmpty)
    }
}
