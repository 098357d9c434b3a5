@testable import ConduitClient
import ConduitWire
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

/// The client's reading of the host's frames: parts joined up to a limit.
@Suite("Client: joining the host's parts")
struct MessageReaderTests {
    /// A message whose parts pass the limit is dropped whole, with an error: its later parts,
    /// up to its last, went on into a new join and its tail was delivered as a message.
    @Test func aMessageOverTheLimitIsDroppedWholeNotDeliveredAsItsTail() throws {
        let delivered = Mutex<[Message]>([])
        let failures = Mutex(0)
        let callbacks = WebSocketConnection.Callbacks(
            opened: { _ in }, message: { message in delivered.withLock { $0.append(message) } },
            failure: { _ in failures.withLock { $0 += 1 } }, closed: { _, _ in })
        let channel = EmbeddedChannel(handler: MessageReader(callbacks: callbacks, joinLimit: 130))
        func part(_ byte: UInt8, more: Bool) throws -> WebSocketFrame {
            let headers: Headers = more ? ["route": "big", "more": "true"] : ["route": "big"]
            return WebSocketFrame(fin: true, opcode: .binary, data: try Message(headers: headers, payload: ByteBuffer(repeating: byte, count: 60)).encoded())
        }
        for frame in [try part(1, more: true), try part(2, more: true), try part(3, more: true), try part(4, more: false)] {
            try channel.writeInbound(frame)
        }
        let whole = WebSocketFrame(fin: true, opcode: .binary, data: try Message(headers: ["route": "small"], payload: ByteBuffer(string: "ok")).encoded())
        try channel.writeInbound(whole)
        #expect(failures.withLock { $0 } == 1)
        #expect(delivered.withLock { $0.map(\.headers.route) } == ["small"], "only the message after the dropped one")
        _ = try channel.finish()
    }
}
