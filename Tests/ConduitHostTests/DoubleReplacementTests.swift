@testable import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

/// Two replacements of an id in quick succession, on sockets whose event loops the test runs
/// by hand (embedded channels): the sockets that were replaced close in the order their loops
/// get to it, and what they had not written must still reach the newest socket oldest first.
@Suite("Two quick replacements")
struct DoubleReplacementTests {
    /// A directory and the sockets of one id, each on its own embedded event loop.
    struct Sockets {
        let directory: ClientDirectory
        let services: SessionDependencies
        let id = ClientID("twice")!

        /// `graceSeconds`: how long the id outlives its sockets.
        init(graceSeconds: Double = 30) throws {
            let configuration = try ConfigurationLoader(environment: ["CONDUIT_SHARED_KEY": "double-key"])
                .load(yaml: "limits:\n  clientGraceSeconds: \(graceSeconds)\nroutes:\n  - route: echo\n    handler: echo\n", file: "<test>")
            let settings = configuration.settings
            let metrics = HostMetrics()
            let group = MultiThreadedEventLoopGroup.singleton
            let directory = ClientDirectory(
                settings: settings, timers: group.next(), budget: BufferBudget(limit: settings.hostBufferBytes, metrics: metrics)) { _ in }
            let registry = try RouteRegistry(configuration: configuration, catalog: .hostTests, metrics: metrics) { entry in
                HandlerContext(route: entry.route, logger: Logger(label: "test"), pushes: directory, eventLoopGroup: group)
            }
            self.directory = directory
            services = SessionDependencies(
                settings: settings, mode: .conduit, registry: registry, directory: directory,
                metrics: metrics, sharedKey: SharedKey(configured: settings.sharedKey), cluster: nil)
        }

        /// A new socket of the id (it replaces the id's current one); resuming when asked.
        func connect(resume: ResumeRequest? = nil) -> EmbeddedChannel {
            EmbeddedChannel(handler: SessionHandler(client: id, window: "0", resume: resume, services: services, logger: Logger(label: "test")))
        }

        /// A first resuming socket of the id, its greeting read: the channel and the id's epoch.
        func connectResuming() throws -> (channel: EmbeddedChannel, epoch: String) {
            let channel = connect(resume: ResumeRequest(received: 0, epoch: nil))
            channel.embeddedEventLoop.run()
            let greeting = try #require(try DoubleReplacementTests.messages(writtenTo: channel).first)
            return (channel, try #require(greeting.headers["epoch"]))
        }

        func push(_ numbers: ClosedRange<Int>) {
            for n in numbers { directory.push(numberedPush(n), to: id) }
        }
    }

    /// The first socket takes nothing more, so pushes 1–3 wait in its queue; a second socket
    /// replaces it (the first's close waits for its loop to run), and pushes 4–6 wait in the
    /// id's buffer for the first's handover.
    static func replacedWithMessagesWaiting(_ sockets: Sockets) -> (first: EmbeddedChannel, second: EmbeddedChannel) {
        let first = sockets.connect()
        first.isWritable = false
        sockets.push(1...3)
        let second = sockets.connect()
        sockets.push(4...6)
        return (first, second)
    }

    @Test func theOldestSocketsUnsentMessagesComeFirstWhicheverClosesFirst() throws {
        let sockets = try Sockets()
        let (first, second) = Self.replacedWithMessagesWaiting(sockets)
        let third = sockets.connect()
        // The second closes first, and the third's loop runs before the first has closed.
        second.embeddedEventLoop.run()
        third.embeddedEventLoop.run()
        first.embeddedEventLoop.run()
        third.embeddedEventLoop.run()
        try Self.expectOneToSix(writtenTo: third, closing: [first, second, third])
    }

    /// The replacing socket leaves before the replaced one has handed back: a socket that
    /// connects then must still wait for that handover (it was given the buffer at once).
    @Test func aSocketThatComesAfterTheReplacingOneLeftWaitsForTheOlderHandover() throws {
        let sockets = try Sockets()
        let (first, second) = Self.replacedWithMessagesWaiting(sockets)
        _ = try? second.close().wait()
        let third = sockets.connect()
        third.embeddedEventLoop.run()
        first.embeddedEventLoop.run()
        third.embeddedEventLoop.run()
        try Self.expectOneToSix(writtenTo: third, closing: [first, second, third])
    }

    /// The id expires while the socket it replaced has not closed yet; that socket's handover
    /// then makes the id anew, and it must expire again (it stayed, its bytes reserved).
    /// On a thread of its own: the embedded loops are used only from the thread that made them
    /// (an `await` may resume on another, which SwiftNIO reports as misuse), and its waits for
    /// expiry hold none of the cooperative pool's two threads.
    @Test func aReplacedSocketThatClosesAfterItsIdExpiredLeavesNothingBehind() async throws {
        let (buffered, usedBytes) = try await offThePool { Result { try Self.expireThenHandOver() } }.get()
        #expect(buffered == 3, "the late handover is kept for a while")
        #expect(usedBytes == 0)
    }

    /// What the id buffered once the late handover made it anew, and the budget's bytes once
    /// it expired again. A grace of 3 s, not 0.2: the buffer is read between the two expiries.
    static func expireThenHandOver() throws -> (buffered: Int?, usedBytes: Int) {
        let sockets = try Sockets(graceSeconds: 3)
        let (first, second) = Self.replacedWithMessagesWaiting(sockets)
        defer { for channel in [first, second] { _ = try? channel.finish(acceptAlreadyClosed: true) } }
        _ = try? second.close().wait()
        try waitUntilBlocking { sockets.directory.snapshot.isEmpty }
        first.embeddedEventLoop.run()
        let buffered = sockets.directory.snapshot.first?.buffered
        try waitUntilBlocking { sockets.directory.snapshot.isEmpty }
        return (buffered, sockets.directory.budget.usedBytes)
    }

    /// A resuming socket replaced while its writes were held back writes again before it has
    /// closed: from the new socket's greeting on the id's positions are the new socket's, so
    /// the old one may number none of what it held; it hands all of it to the new socket, which
    /// numbers it after its greeting, followed by what waited in the id's buffer.
    @Test func aReplacedResumingSocketNumbersNothingAfterTheNewGreeting() throws {
        let sockets = try Sockets()
        let (first, epoch) = try sockets.connectResuming()
        first.isWritable = false
        sockets.push(1...3)
        let second = sockets.connect(resume: ResumeRequest(received: 0, epoch: epoch))
        sockets.push(4...6)
        first.isWritable = true
        first.pipeline.fireChannelWritabilityChanged()
        first.embeddedEventLoop.run()
        second.embeddedEventLoop.run()

        #expect(try Self.messages(writtenTo: first).isEmpty, "the replaced socket wrote nothing numbered")
        let received = try Self.messages(writtenTo: second)
        #expect(received.first?.headers.route == ResumeHeader.resumeRoute && received.first?.headers["replayed"] == "0")
        let pushes = received.dropFirst()
        #expect(pushes.map { $0.headers["n"] } == (1...6).map { "\($0)" }, "every push once, in order")
        #expect(pushes.map { $0.headers["pos"] } == (1...6).map { "\($0)" }, "numbered by the new socket, from 1")
        for channel in [first, second] { _ = try? channel.finish(acceptAlreadyClosed: true) }
    }

    /// A message a replaced socket can no longer number goes to the queue it hands over; when
    /// the host's budget can't take it, it is dropped there (counted), and the push was told
    /// `.sent` all the same.
    @Test func aMessageTheBudgetRefusesOnAReplacedSocketIsReportedDropped() throws {
        let sockets = try Sockets()
        let (first, epoch) = try sockets.connectResuming()
        let second = sockets.connect(resume: ResumeRequest(received: 0, epoch: epoch))
        let budget = sockets.directory.budget
        let filled = budget.limit - budget.usedBytes
        #expect(budget.reserve(filled))
        defer { budget.release(filled) }
        let handler = try first.pipeline.syncOperations.handler(type: SessionHandler.self)
        let outcome = handler.send(MessageQueue.Entry(numberedPush(1), delivery: .droppable), reserved: false)
        #expect(outcome == .dropped(.hostBudget), "\(outcome)")
        for channel in [first, second] { _ = try? channel.finish(acceptAlreadyClosed: true) }
    }

    static func expectOneToSix(writtenTo newest: EmbeddedChannel, closing channels: [EmbeddedChannel]) throws {
        let received = try pushNumbers(writtenTo: newest)
        #expect(received == Array(1...6), "the newest socket got \(received)")
        for channel in channels { _ = try? channel.finish(acceptAlreadyClosed: true) }
    }

    /// The `n` of every message in the server frames written to `channel`, in order.
    static func pushNumbers(writtenTo channel: EmbeddedChannel) throws -> [Int] {
        try messages(writtenTo: channel).map { try #require($0.headers["n"].flatMap(Int.init)) }
    }

    /// The messages of the frames written to `channel` since last read, in order; a close frame
    /// is skipped, every other must be a final binary frame.
    static func messages(writtenTo channel: EmbeddedChannel) throws -> [Message] {
        var bytes = ByteBuffer()
        while var written = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&written) }
        var messages: [Message] = []
        while let first = bytes.readInteger(as: UInt8.self), let second = bytes.readInteger(as: UInt8.self) {
            var length = Int(second & 0x7F)
            if length == 126 { length = Int(bytes.readInteger(as: UInt16.self)!) }
            if length == 127 { length = Int(bytes.readInteger(as: UInt64.self)!) }
            let frame = bytes.readSlice(length: length)
            if first == 0x88 { continue }
            #expect(first == 0x82, "a final binary frame")
            messages.append(try Message(decoding: try #require(frame)))
        }
        return messages
    }
}
