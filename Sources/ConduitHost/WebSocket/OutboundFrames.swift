import ConduitWire
import NIOCore
import NIOWebSocket

/// Server frames made in one event-loop tick, encoded (frame header included) into one buffer
/// that is written once. After the socket has taken it, the same buffer is reused, so
/// replying to small messages allocates nothing.
struct OutboundFrames {
    private var buffer = ByteBuffer()
    /// The buffer was handed to the channel: clear it before writing again (which reuses its
    /// memory once the channel has let it go).
    private var handedOff = false
    /// Payloads from this size on are not copied: the frame's header and the message's
    /// headers go in the buffer, and the payload is written after it as a buffer of its own.
    static let gatherThreshold = 1024
    /// Whether a message with `payload` has it written after its frame rather than copied in:
    /// not when it is a slice of a much larger buffer (the whole read it came in), which the
    /// channel would keep alive until it is written: NIO's 64 KiB mark of 1 KiB echoes to a
    /// slow reader held 64 read buffers of a megabyte, outside the budget. The part of a split
    /// message is a slice of the whole's buffer by design (the whole made compact first).
    static func writesApart(_ payload: ByteBuffer, isPart: Bool = false) -> Bool {
        payload.readableBytes >= gatherThreshold && (isPart || payload.isCompact)
    }
    /// Beyond this the buffer is not kept for reuse (an idle connection holds little).
    private static let keptCapacity = 16 * 1024

    var byteCount: Int { handedOff ? 0 : buffer.readableBytes }

    /// A message appended as one binary frame. Plain values: it is returned for every message,
    /// and a payload held here cost outlined copies and destroys (by value witness) per message.
    struct Appended {
        /// The encoded message's size (the frame's payload).
        let encodedBytes: Int
        /// The message's payload is not in the buffer: it is to be written after it, not copied.
        let payloadIsApart: Bool
        /// Where the encoded message lies in the buffer (`withBytes(in:_:)`): all of it, or all
        /// but the payload.
        let bufferedRange: Range<Int>
    }

    /// Appends `message` (with `field` after its headers) as one binary frame. Nothing is
    /// appended when the message breaks a limit.
    mutating func append(_ message: Message, appending field: Message.AppendedField? = nil, isPart: Bool = false) throws(WireError) -> Appended {
        try append(message, appending: field, isPart: isPart) { _, _ in }
    }

    /// As `append(_:appending:)`, and `encoded` is given the message's bytes as just written
    /// (all but the payload when it is apart) and what was appended, inside the same raw
    /// write: a copy made there (resume's log) pays no second access to the buffer, each a
    /// dynamic exclusivity check in SwiftNIO's inlined code.
    mutating func append(
        _ message: Message, appending field: Message.AppendedField? = nil, isPart: Bool = false,
        encoded: (UnsafeRawBufferPointer, Appended) -> Void
    ) throws(WireError) -> Appended {
        let size = try message.validatedEncodedSize(appending: field)
        prepare()
        let gathered = Self.writesApart(message.payload, isPart: isPart)
        let buffered = gathered ? size - message.payload.readableBytes : size
        let headerSize = FrameHeader.serverHeaderSize(length: size)
        let start = buffer.writerIndex + headerSize
        let appended = Appended(encodedBytes: size, payloadIsApart: gathered, bufferedRange: start..<start + buffered)
        // One raw write for the frame's header and the message (ByteBuffer's own writes each
        // re-check capacity and uniqueness, and pay a dynamic exclusivity check).
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: headerSize + buffered) { out in
            let header = FrameHeader.writeServerFrame(.binary, length: size, into: out)
            let body = UnsafeMutableRawBufferPointer(rebasing: out[header...])
            let written = gathered ? message.encodePrefix(into: body, appending: field) : message.encode(into: body, appending: field)
            encoded(UnsafeRawBufferPointer(rebasing: body[..<written]), appended)
            return header + written
        }
        return appended
    }

    /// Reads the bytes of a message just appended (`Appended.bufferedRange`).
    func withBytes<Result>(in range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        buffer.withUnsafeReadableBytes { readable in
            body(UnsafeRawBufferPointer(rebasing: readable[(range.lowerBound - buffer.readerIndex)..<(range.upperBound - buffer.readerIndex)]))
        }
    }

    /// Appends a control or text frame with `payload`.
    mutating func append(_ opcode: WebSocketOpcode, payload: ByteBuffer) {
        prepare()
        FrameHeader.writeServerFrame(opcode, length: payload.readableBytes, into: &buffer)
        buffer.writeImmutableBuffer(payload)
    }

    /// Appends a close frame with `code` (none: an empty body) and `reason` (RFC 6455 §5.5.1).
    mutating func appendClose(code: WebSocketErrorCode?, reason: String) {
        var body = ByteBuffer()
        if let code { body.write(webSocketErrorCode: code) }
        body.writeString(reason)
        append(.connectionClose, payload: body)
    }

    /// The bytes to write, if any; the buffer is reused after the channel is done with them.
    mutating func take() -> ByteBuffer? {
        guard !handedOff, buffer.readableBytes > 0 else { return nil }
        handedOff = true
        return buffer
    }

    private mutating func prepare() {
        guard handedOff else { return }
        handedOff = false
        if buffer.capacity > Self.keptCapacity {
            buffer = ByteBuffer()
        } else {
            buffer.clear()
        }
    }
}
