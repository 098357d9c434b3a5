@testable import ConduitHost
import ConduitTesting
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

    /// Random streams of frames, seeded so a failure repeats: any opcode and flags, declared
    /// lengths from the edges (0, 125/126, 65,535/65,536, the limit and one past it, 2^62,
    /// 2^63 - 1) with the payload present, cut short or absent, fed in random pieces. The
    /// reader never traps, delivers no message over the limit and never holds more than one
    /// message's worth. (A continuation announcing 2^63 - 1 bytes after a fragment trapped it.)
    @Test func randomStreamsNeitherTrapNorPassTheLimit() {
        var random = SplitMix64(seed: 0xC0DE)
        let limit = 4096
        let lengths: [UInt64] = [0, 1, 3, 125, 126, 127, 65_535, 65_536, UInt64(limit), UInt64(limit + 1), 1 << 62, (1 << 63) - 1]
        let opcodes: [UInt8] = [0x0, 0x0, 0x1, 0x2, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB]
        for _ in 0..<2000 {
            var stream: [UInt8] = []
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                let declared = lengths.randomElement(using: &random)!
                let present = declared <= UInt64(limit) && Bool.random(using: &random) ? Int(declared) : Int.random(in: 0...64, using: &random)
                let whole = frame(
                    opcodes.randomElement(using: &random)!, fin: Bool.random(using: &random),
                    payload: [UInt8](repeating: 0x61, count: present), masked: Int.random(in: 0..<20, using: &random) > 0,
                    rsv: Int.random(in: 0..<20, using: &random) == 0 ? 1 : 0, declaredLength: declared)
                stream += whole
            }
            var reader = ClientFrameReader(maxMessageBytes: limit)
            var start = 0
            while start < stream.count, reader.violation == nil {
                let end = min(start + Int.random(in: 1...300, using: &random), stream.count)
                reader.read(ByteBuffer(bytes: stream[start..<end]), allocator: allocator)
                for frame in reader.frames where !frame.opcode.isControlOpcode {
                    if let message = reader.message(completedBy: frame, allocator: allocator) {
                        #expect(message.payload.readableBytes <= limit)
                    }
                }
                reader.releaseLargeBuffer()
                // A message's limit, what a frame's header and a read's rest may add, and growth by doubling.
                #expect(reader.unfinishedBytes <= 4 * (limit + 300 + 14))
                start = end
            }
        }
    }
}
