@testable import ConduitHost
import ConduitWire
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

/// What the socket hands to the channel holds its own bytes only. A reply's payload of 1 KiB
/// or more was handed over as it was, apart from its frame: the slice of the whole read's
/// buffer it came in (an echo read with a large message), so NIO's 64 KiB mark of such
/// replies to a client that read slowly held 64 of those buffers, a megabyte each, outside
/// the budget. One that pins a larger buffer is copied into the frame now.
@Suite("Writes pin no read buffer")
struct DirectWritePinTests {
    /// A final binary frame masked with a zero key (a client's frame, whose bytes stay as they
    /// are): the host's own frame header with the mask bit set and the key after it.
    static func clientFrame(_ message: Message) throws -> ByteBuffer {
        clientFrame(.binary, try message.encoded())
    }

    /// A client's frame masked with the zero key (its payload unchanged).
    static func clientFrame(_ opcode: WebSocketOpcode, _ payload: ByteBuffer) -> ByteBuffer {
        var body = payload
        var frame = ByteBuffer()
        FrameHeader.writeServerFrame(opcode, length: body.readableBytes, into: &frame)
        frame.setInteger(frame.getInteger(at: 1, as: UInt8.self)! | 0x80, at: 1)
        frame.writeInteger(UInt32(0))
        frame.writeBuffer(&body)
        return frame
    }

    @Test func anEchoReadWithALargeMessageIsWrittenWithItsOwnBytes() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let channel = sockets.connect()
        // About 900 KB of `cancel` headers (an unknown token: no reply), then the echo, in one read.
        let large = Message(headers: Headers((0..<15).map { _ in ("cancel", String(repeating: "c", count: 60_000)) }))
        let payload = ByteBuffer(repeating: 3, count: 1_500)
        var read = try Self.clientFrame(large)
        var echo = try Self.clientFrame(Message(headers: ["route": "echo", "token": "pinned"], payload: payload))
        read.writeBuffer(&echo)
        try channel.writeInbound(read)
        channel.embeddedEventLoop.run()
        var written: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written.append(buffer) }
        #expect(written.reduce(0) { $0 + $1.readableBytes } > payload.readableBytes, "the echo was written")
        for buffer in written {
            #expect(buffer.storageCapacity <= 2 * buffer.readableBytes + 4096, "a \(buffer.readableBytes)-byte write holds \(buffer.storageCapacity) bytes")
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}
