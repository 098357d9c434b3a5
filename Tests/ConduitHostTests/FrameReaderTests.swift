@testable import ConduitHost
import NIOCore
import NIOWebSocket
import Testing

/// The host's frame reader against RFC 6455 §5: frames cut at any byte, joined fragments,
/// and every breach refused with its close code before the payload is buffered.
@Suite("Frame reader")
struct FrameReaderTests {
    private let allocator = ByteBufferAllocator()

    private func frame(_ opcode: UInt8, fin: Bool = true, payload: [UInt8], masked: Bool = true, rsv: UInt8 = 0, declaredLength: UInt64? = nil) -> [UInt8] {
        var bytes: [UInt8] = [(fin ? 0x80 : 0) | rsv << 4 | opcode]
        let length = declaredLength ?? UInt64(payload.count)
        let mask: UInt8 = masked ? 0x80 : 0
        if length < 126 {
            bytes.append(mask | UInt8(length))
        } else if length <= 0xFFFF {
            bytes += [mask | 126, UInt8(length >> 8), UInt8(length & 0xFF)]
        } else {
            bytes.append(mask | 127)
            bytes += (0..<8).reversed().map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
        }
        guard masked else { return bytes + payload }
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        return bytes + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    /// Feeds `stream` in pieces of `piece` bytes; returns each message or control frame as
    /// (opcode, payload), and the breach if any.
    private func read(_ stream: [UInt8], piece: Int, limit: Int = 1 << 20) -> ([(UInt8, [UInt8])], FrameViolation?) {
        var reader = ClientFrameReader(maxMessageBytes: limit)
        var events: [(UInt8, [UInt8])] = []
        var start = 0
        while start < stream.count {
            let end = min(start + piece, stream.count)
            reader.read(ByteBuffer(bytes: stream[start..<end]), allocator: allocator)
            for frame in reader.frames {
                if frame.opcode.isControlOpcode {
                    events.append((UInt8(webSocketOpcode: frame.opcode), Array(buffer: reader.payload(of: frame))))
                } else if let message = reader.message(completedBy: frame, allocator: allocator) {
                    events.append((UInt8(webSocketOpcode: message.opcode), Array(buffer: message.payload)))
                }
            }
            reader.releaseLargeBuffer()
            if let violation = reader.violation { return (events, violation) }
            start = end
        }
        return (events, nil)
    }

    @Test func framesCutAtEveryByteGiveTheSameMessages() {
        let big = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let stream = frame(0x2, payload: [1, 2, 3])
            + frame(0x2, fin: false, payload: Array(big[..<40_000])) + frame(0x9, payload: [7])
            + frame(0x0, fin: false, payload: []) + frame(0x0, payload: Array(big[40_000...]))
            + frame(0x2, payload: Array(big[..<200])) + frame(0x8, payload: [0x03, 0xE8])
        for piece in [1, 2, 3, 7, 13, 100, 4096, 65_536, stream.count] {
            let (events, violation) = read(stream, piece: piece)
            #expect(violation == nil)
            #expect(events.map(\.0) == [2, 9, 2, 2, 8], "piece \(piece)")
            #expect(events.map(\.1) == [[1, 2, 3], [7], big, Array(big[..<200]), [0x03, 0xE8]], "piece \(piece)")
        }
    }

    @Test(arguments: [
        ("unmasked", [0x82, 0x01, 0x00], WebSocketErrorCode.protocolError),
        ("reserved bits", [0xC2, 0x80, 1, 2, 3, 4], .protocolError),
        ("unknown opcode", [0x83, 0x80, 1, 2, 3, 4], .protocolError),
        ("fragmented ping", [0x09, 0x80, 1, 2, 3, 4], .protocolError),
        ("ping of 126 bytes", [0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4], .protocolError),
        ("continuation first", [0x80, 0x80, 1, 2, 3, 4], .protocolError),
        ("64-bit length with its top bit set", [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1], .protocolError),
    ] as [(String, [UInt8], WebSocketErrorCode)])
    func breachesAreRefused(name: String, bytes: [UInt8], code: WebSocketErrorCode) {
        let (events, violation) = read(bytes, piece: bytes.count)
        #expect(events.isEmpty, "\(name)")
        #expect(violation?.code == code, "\(name)")
    }

    @Test func aNewMessageInsideAFragmentedOneIsRefused() {
        let stream = frame(0x2, fin: false, payload: [1]) + frame(0x2, payload: [2])
        #expect(read(stream, piece: stream.count).1?.code == .protocolError)
    }

    @Test func anOversizedMessageIsRefusedFromItsHeaderAlone() {
        // Only the header arrives: the reader refuses without waiting for (or buffering) 2 MiB.
        let header = Array(frame(0x2, payload: [], declaredLength: 2 << 20).prefix(14))
        #expect(read(header, piece: header.count, limit: 1 << 20).1?.code == .messageTooLarge)
        let fragments = frame(0x2, fin: false, payload: [UInt8](repeating: 1, count: 600))
            + frame(0x0, payload: [UInt8](repeating: 2, count: 600))
        #expect(read(fragments, piece: 50, limit: 1024).1?.code == .messageTooLarge)
    }

    @Test func nothingIsReadAfterABreach() {
        var reader = ClientFrameReader(maxMessageBytes: 1024)
        reader.read(ByteBuffer(bytes: [0x82, 0x01, 0x00]), allocator: allocator)
        #expect(reader.violation != nil)
        reader.read(ByteBuffer(bytes: frame(0x2, payload: [1])), allocator: allocator)
        #expect(reader.frames.isEmpty)
    }
}
