@testable import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import NIOEmbedded
import Testing

/// Two sockets of a resuming id, their event loops run by hand: the replaced one still reads
/// what it had received while the new one reads what the client sent again.
@Suite("Resume: a request completed on the replaced socket")
struct StaleChunkTests {
    /// Both sockets took the chunks of a request (chunks are not processed until their request
    /// is); the replaced one, its loop lagging, read the message completing it and dispatched it.
    /// On the new socket that message was a duplicate and was dropped, but its chunks stayed
    /// queued, and the client's next request was joined behind them: an echo of "GH" came
    /// back "abcdGH".
    @Test func itsChunksOnTheNewSocketAreNotJoinedToTheNextRequest() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let (first, epoch) = try sockets.connectResuming()
        func frame(_ headers: Headers, _ payload: String) throws -> ByteBuffer {
            try DirectWritePinTests.clientFrame(Message(headers: headers, payload: ByteBuffer(string: payload)))
        }
        let chunks = [(["pos": "1"] as Headers, "ab"), (["pos": "2"], "cd")]
        for (headers, payload) in chunks { try first.writeInbound(frame(headers, payload)) }
        let second = sockets.connect(resume: ResumeRequest(received: 0, epoch: epoch))
        second.embeddedEventLoop.run()
        for (headers, payload) in chunks { try second.writeInbound(frame(headers, payload)) }
        let completing = try frame(["route": "echo", "token": "joined", "pos": "3"], "EF")
        try first.writeInbound(completing)
        try second.writeInbound(completing)
        try second.writeInbound(frame(["route": "echo", "token": "next", "pos": "4"], "GH"))
        first.embeddedEventLoop.run()
        second.embeddedEventLoop.run()

        let next = try DoubleReplacementTests.messages(writtenTo: second).first { $0.headers["token"] == "next" }
        #expect(next.map { String(buffer: $0.payload) } == "GH")
        for channel in [first, second] { _ = try? channel.finish(acceptAlreadyClosed: true) }
    }
}
