import NIOCore
import NIOWebSocket

/// A frame's header as RFC 6455 §5.2 lays it out, read from raw bytes without copying.
struct FrameHeader {
    let fin: Bool
    let opcode: WebSocketOpcode
    /// The masking key's four bytes in memory order (RFC 6455 §5.3), if the frame is masked.
    let maskKey: UInt32?
    let reservedBits: Bool
    /// Bytes of the header itself (2 to 14).
    let size: Int
    let payloadLength: Int

    /// nil when `bytes` don't yet hold the whole header.
    init?(parsing bytes: UnsafeRawBufferPointer) throws(FrameViolation) {
        guard bytes.count >= 2 else { return nil }
        let first = bytes[0], second = bytes[1]
        var size = 2
        var length = Int(second & 0x7F)
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
            size = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            let raw = (2..<10).reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[$1]) }
            guard raw >> 63 == 0 else { throw FrameViolation(.protocolError, "the frame length's most significant bit is set") }
            length = Int(truncatingIfNeeded: raw)
            size = 10
        }
        let masked = second & 0x80 != 0
        if masked {
            guard bytes.count >= size + 4 else { return nil }
            maskKey = bytes.loadUnaligned(fromByteOffset: size, as: UInt32.self)
            size += 4
        } else {
            maskKey = nil
        }
        fin = first & 0x80 != 0
        reservedBits = first & 0x70 != 0
        opcode = WebSocketOpcode(encodedWebSocketOpcode: first & 0x0F)!
        self.size = size
        payloadLength = length
    }

    /// Writes the header of an unmasked, final server frame of `length` payload bytes.
    static func writeServerFrame(_ opcode: WebSocketOpcode, length: Int, into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: serverHeaderSize(length: length)) {
            writeServerFrame(opcode, length: length, into: $0)
        }
    }

    /// The size of a server frame's header (unmasked) for `length` payload bytes.
    static func serverHeaderSize(length: Int) -> Int {
        switch length {
        case ..<126: 2
        case ...Int(UInt16.max): 4
        default: 10
        }
    }

    /// Writes the header at the start of `out` (room for `serverHeaderSize(length:)` bytes);
    /// returns its size.
    static func writeServerFrame(_ opcode: WebSocketOpcode, length: Int, into out: UnsafeMutableRawBufferPointer) -> Int {
        let size = serverHeaderSize(length: length)
        out[0] = 0x80 | UInt8(webSocketOpcode: opcode)
        switch size {
        case 2:
            out[1] = UInt8(length)
        case 4:
            out[1] = 126
            out.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
        default:
            out[1] = 127
            out.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
        }
        return size
    }
}

/// A breach of RFC 6455 by the client: the connection is closed with `code`.
struct FrameViolation: Error, Equatable {
    let code: WebSocketErrorCode
    let reason: String

    init(_ code: WebSocketErrorCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}
