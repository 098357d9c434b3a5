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
    /// up to its last, went on into a new join and its tail was delivered as a message. It is
    /// told with its last part's headers, for resume to count its position.
    @Test func aMessageOverTheLimitIsDroppedWholeNotDeliveredAsItsTail() throws {
        let read = try Self.read([part(1, more: true), part(2, more: true), part(3, more: true), part(4, more: false), small], joinLimit: 130)
        #expect(read.failures == 1)
        #expect(read.dropped.map { $0[ResumeHeader.position] } == ["4"], "told with its last part")
        #expect(read.routes == ["small"], "only the message after the dropped one")
    }

    /// A part that doesn't decode, amid a split message, drops the message: its last part
    /// completed the parts around the hole, and they were delivered as one message.
    @Test func aMessageWithAnUndecodablePartIsDroppedNotDeliveredWithAHole() throws {
        let read = try Self.read([part(1, more: true), undecodable, part(3, more: false), small])
        #expect(read.failures == 1)
        #expect(read.routes == ["small"], "only the message after the dropped one")
    }

    /// A frame that doesn't decode while a message over the limit is being skipped keeps it
    /// skipped: it ended the skipping, and the dropped message's rest was delivered.
    @Test func anUndecodableFrameKeepsAMessageOverTheLimitDropped() throws {
        let read = try Self.read([part(1, more: true), part(2, more: true), undecodable, part(3, more: false), small], joinLimit: 100)
        #expect(read.failures == 1, "one error for the one dropped message")
        #expect(read.routes == ["small"], "only the message after the dropped one")
    }

    private func part(_ byte: UInt8, more: Bool) throws -> WebSocketFrame {
        let headers: Headers = more ? ["route": "big", "pos": "\(byte)", "more": "true"] : ["route": "big", "pos": "\(byte)"]
        return WebSocketFrame(fin: true, opcode: .binary, data: try Message(headers: headers, payload: ByteBuffer(repeating: byte, count: 60)).encoded())
    }

    private var small: WebSocketFrame {
        get throws {
            WebSocketFrame(fin: true, opcode: .binary, data: try Message(headers: ["route": "small"], payload: ByteBuffer(string: "ok")).encoded())
        }
    }

    private let undecodable = WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [0xFF]))

    /// The routes of the messages a reader delivers from `frames`, the last parts' headers of
    /// the ones it drops, and its errors (a dropped message's counts as one).
    private static func read(_ frames: [WebSocketFrame], joinLimit: Int = WebSocketConnection.maxJoinedBytes) throws -> (routes: [String?], dropped: [Headers], failures: Int) {
        let arrived = Mutex<[Arrival]>([])
        let failures = Mutex(0)
        let callbacks = WebSocketConnection.Callbacks(
            opened: { _ in }, arrived: { arrival in arrived.withLock { $0.append(arrival) } },
            failure: { _ in failures.withLock { $0 += 1 } }, undecodable: { _ in failures.withLock { $0 += 1 } }, closed: { _, _ in })
        let channel = EmbeddedChannel(handler: MessageReader(callbacks: callbacks, joinLimit: joinLimit))
        for frame in frames { try channel.writeInbound(frame) }
        _ = try channel.finish()
        let messages = arrived.withLock { $0.compactMap { arrival -> Message? in if case .message(let message, _) = arrival { message } else { nil } } }
        let dropped = arrived.withLock { $0.compactMap { arrival -> Headers? in if case .dropped(let lastPart, _) = arrival { lastPart } else { nil } } }
        return (messages.map(\.headers.route), dropped, failures.withLock { $0 } + dropped.count)
    }
}
