@testable import ConduitHost
import ConduitKit
import ConduitWire
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

/// NIO fires a writability change inside the write that passes the high-water mark, and the
/// flush the handler makes of it makes the channel writable again, inside that same write. A
/// reply whose payload goes to the channel apart from its frame's header (1 KiB and more, in
/// a buffer of its own) had a pong that waited, or an acknowledgement owed, written by that
/// nested change between the header and the payload: the client read them as payload bytes,
/// and the stream after it as garbage.
@Suite("Nothing inside a frame")
struct MidFrameWriteTests {
    /// What NIO does past its watermarks, at every write: unwritable on the write, writable
    /// again on the flush, each fired to the handlers as it happens. With `failingFlushRead`,
    /// the first flush fails as one does when the peer reset the connection: inside it NIO
    /// reads what the socket still holds (these bytes), then closes.
    final class WatermarkFlipper: ChannelOutboundHandler {
        typealias OutboundIn = Any
        private let channel: EmbeddedChannel
        private var failingFlushRead: ByteBuffer?

        init(_ channel: EmbeddedChannel, failingFlushRead: ByteBuffer? = nil) {
            self.channel = channel
            self.failingFlushRead = failingFlushRead
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            context.write(data, promise: promise)
            guard channel.isWritable else { return }
            channel.isWritable = false
            context.fireChannelWritabilityChanged()
        }

        func flush(context: ChannelHandlerContext) {
            if let held = failingFlushRead {
                failingFlushRead = nil
                context.fireChannelRead(NIOAny(held))
                return context.close(promise: nil)
            }
            context.flush()
            guard !channel.isWritable else { return }
            channel.isWritable = true
            context.fireChannelWritabilityChanged()
        }
    }

    @Test(arguments: ["pong", "acknowledgement"])
    func nothingIsWrittenBetweenAFramesHeaderAndItsPayload(_ waiting: String) throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let channel = try sockets.connectResuming().channel
        try channel.pipeline.syncOperations.addHandler(WatermarkFlipper(channel), position: .first)
        let payload = ByteBuffer(repeating: 7, count: 2_000)
        var read = ByteBuffer()
        var echo: Headers = ["route": "echo", "pos": "1"]
        if waiting == "pong" {
            read.writeImmutableBuffer(DirectWritePinTests.clientFrame(.ping, ByteBuffer(string: "a")))
            read.writeImmutableBuffer(DirectWritePinTests.clientFrame(.ping, ByteBuffer(string: "b")))
        } else {
            for position in 1...31 {
                read.writeImmutableBuffer(try DirectWritePinTests.clientFrame(Message(headers: ["cancel": "nothing", "pos": "\(position)"])))
            }
            echo = Headers([("route", "echo"), ("pos", "32")] + (0..<(WireLimits.maxHeaders - 2)).map { ("h\($0)", "") })
        }
        read.writeImmutableBuffer(try DirectWritePinTests.clientFrame(Message(headers: echo, payload: payload)))
        try channel.writeInbound(read)
        channel.embeddedEventLoop.run()

        var written = ByteBuffer()
        while var bytes = try channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&bytes) }
        var frames: [(opcode: WebSocketOpcode?, payload: ByteBuffer)] = []
        while let first = written.readInteger(as: UInt8.self), let second = written.readInteger(as: UInt8.self) {
            var length = Int(second & 0x7F)
            if length == 126 { length = Int(written.readInteger(as: UInt16.self) ?? 0) }
            guard let body = written.readSlice(length: length) else { break }
            frames.append((WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F), body))
        }
        let pongs = frames.filter { $0.opcode == .pong }.map { String(buffer: $0.payload) }
        #expect(pongs.sorted() == (waiting == "pong" ? ["a", "b"] : []), "pongs: \(pongs)")
        let messages = frames.filter { $0.opcode == .binary }.compactMap { try? Message(decoding: $0.payload) }
        let replies = messages.filter { $0.headers.route == "echo" }
        #expect(replies.map { $0.payload } == [payload], "\(frames.count) frames: \(frames.map { $0.opcode.map { "\($0)" } ?? "?" })")
        let acknowledged = messages.compactMap { $0.headers[ResumeHeader.ack] }
        #expect(acknowledged == (waiting == "pong" ? [] : ["32"]), "\(acknowledged)")
        #expect(written.readableBytes == 0, "\(written.readableBytes) bytes left that no frame holds")
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    /// A read whose first reply's write fails: the frames NIO reads inside that write came
    /// ahead of the rest of the read being processed, which the close then dropped, and the
    /// id's acknowledgement of client positions went past those never processed (a resumed
    /// client then forgets them as done: lost). Now nothing of that read is processed.
    @Test func framesReadInsideAFailedWriteDoNotOvertakeTheRestOfTheRead() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let channel = try sockets.connectResuming().channel
        var later = ByteBuffer()
        for position in 40...41 {
            later.writeImmutableBuffer(try DirectWritePinTests.clientFrame(Message(headers: ["cancel": "nothing", "pos": "\(position)"])))
        }
        try channel.pipeline.syncOperations.addHandler(WatermarkFlipper(channel, failingFlushRead: later), position: .first)
        // An echo whose reply's payload goes apart (written at once), then positions 2–39.
        var read = try DirectWritePinTests.clientFrame(Message(headers: ["route": "echo", "pos": "1"], payload: ByteBuffer(repeating: 7, count: 2_000)))
        for position in 2...39 {
            read.writeImmutableBuffer(try DirectWritePinTests.clientFrame(Message(headers: ["cancel": "nothing", "pos": "\(position)"])))
        }
        _ = try? channel.writeInbound(read)
        channel.embeddedEventLoop.run()
        let processed = sockets.directory.snapshot.first { $0.id == sockets.id.rawValue }?.resume?.clientAcknowledged
        #expect(processed == 1, "client positions acknowledged through \(processed.map(String.init) ?? "none") with 2–39 never processed")
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}
