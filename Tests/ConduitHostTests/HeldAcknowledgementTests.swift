@testable import ConduitHost
import ConduitKit
import ConduitTesting
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
        let channel = try sockets.connectResuming().channel
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

/// A replay's batch ends at 256 messages or about 64 KiB, which can be between two parts of a
/// message (a part of 64 KiB is a batch alone): an acknowledgement owed then (32 client
/// positions read before the next batch) went between them, and the client joined the first
/// part to it.
@Suite("Acknowledgements during a replay")
struct ReplayBetweenPartsTests {
    @Test func anAcknowledgementWaitsForTheReplayedMessagesLastPart() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let (first, epoch) = try sockets.connectResuming()
        sockets.directory.push(numberedPush(1, payload: patternedBytes(1, count: 100_000)), to: sockets.id)
        first.embeddedEventLoop.run()
        #expect(try DoubleReplacementTests.messages(writtenTo: first).count == 2, "the push in two parts")

        let second = sockets.connect(resume: ResumeRequest(received: 0, epoch: epoch))
        first.embeddedEventLoop.run()
        second.embeddedEventLoop.run()
        for position in 1...32 {
            try second.writeInbound(try DirectWritePinTests.clientFrame(Message(headers: ["cancel": "nothing", "pos": "\(position)"])))
        }
        second.pipeline.fireChannelReadComplete()
        second.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        second.embeddedEventLoop.run()
        let written = try DoubleReplacementTests.messages(writtenTo: second)
        let firstPart = try #require(written.firstIndex { $0.headers.hasMore })
        #expect(written[firstPart + 1].headers["n"] == "1", "\(written[firstPart + 1].headers) came between the parts")
        #expect(written.last?.headers.route == ResumeHeader.ackRoute && written.count == 1 + 2 + 1, "\(written.map(\.headers))")
        for channel in [first, second] { _ = try? channel.finish(acceptAlreadyClosed: true) }
    }
}
