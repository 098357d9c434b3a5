@testable import ConduitHost
import ConduitWire
import NIOCore
import NIOEmbedded
import Testing

/// A resuming connection acknowledges client positions (`conduit.ack`) at least every 32: to
/// a client that sent and read nothing, each went into the channel regardless, one a read,
/// outside every bound. Now one waits, owed, until the socket takes more.
@Suite("Acknowledgements to a socket that takes no more")
struct HeldAcknowledgementTests {
    @Test func oneAcknowledgementWaitsForTheSocketToTakeMore() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let channel = sockets.connect(resume: ResumeRequest(received: 0, epoch: nil))
        channel.embeddedEventLoop.run()
        _ = try DoubleReplacementTests.messages(writtenTo: channel)
        channel.isWritable = false
        // Cancels of nothing: no reply, but each takes a position to acknowledge; a read each.
        for position in 1...640 {
            try channel.writeInbound(try DirectWritePinTests.clientFrame(Message(headers: ["cancel": "nothing", "pos": "\(position)"])))
        }
        channel.embeddedEventLoop.run()
        let whileFull = try DoubleReplacementTests.messages(writtenTo: channel).filter { $0.headers.route == "conduit.ack" }
        #expect(whileFull.isEmpty, "\(whileFull.count) acknowledgements written to a socket that took no more")
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.run()
        let acks = try DoubleReplacementTests.messages(writtenTo: channel).filter { $0.headers.route == "conduit.ack" }
        #expect(acks.map { $0.headers["ack"] } == ["640"])
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}
