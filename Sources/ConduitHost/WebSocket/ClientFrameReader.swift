import NIOCore
import NIOWebSocket

/// Reads a client's frames straight from the socket's read buffers (RFC 6455 §5).
///
/// All frames a read completes are checked and unmasked in one pass into a buffer the
/// connection reuses (large ones, where asked, into buffers of their own), before any is
/// handed on: nothing writes to that buffer while a handler may hold a slice of it, so the
/// routed echo allocates nothing per message. A frame split across reads waits in a buffer
/// sized once for the whole frame, so a large one is copied in linear time. Every rule a
/// server must check is checked here, and a breach ends reading.
struct ClientFrameReader {
    /// One frame of the current read.
    struct Frame {
        let opcode: WebSocketOpcode
        let fin: Bool
        /// Where its payload lies: in `payloads` at this offset, or when negative, in the buffer
        /// of its own at `-1 - offset` in `ownPayloads`.
        let offset: Int
        let length: Int
    }

    let maxMessageBytes: Int
    /// The frames of the last read, in order, then a breach if one followed them.
    private(set) var frames: [Frame] = []
    private(set) var violation: FrameViolation?
    /// Unmasked payloads of the last read's frames.
    private var payloads = ByteBuffer()
    /// Unfragmented frames with at least this many payload bytes are unmasked into buffers of
    /// their own, so that keeping one (resume's window) holds nothing of the other frames of
    /// its read.
    var ownBuffersFrom = Int.max
    /// Those buffers, for the last read.
    private var ownPayloads: [ByteBuffer] = []
    /// Bytes of a frame not yet complete, carried to the next read.
    private var partial: ByteBuffer?
    /// Payload bytes of the fragmented message in progress (nil: none in progress).
    private var fragmentedBytes: Int?
    /// That message's opcode and the payload joined so far.
    private var fragments: (opcode: WebSocketOpcode, payload: ByteBuffer)?
    /// Buffers this size or smaller are kept between reads; larger ones are let go, so an
    /// idle connection holds little whatever it once sent.
    private static let keptCapacity = 16 * 1024

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Memory held between reads for a message not yet complete: a frame split across reads,
    /// the fragments joined so far.
    var unfinishedBytes: Int {
        (partial?.storageCapacity ?? 0) + (fragments?.payload.storageCapacity ?? 0)
    }

    /// The unmasked payload of `frame` (a slice: no copy).
    func payload(of frame: Frame) -> ByteBuffer {
        guard frame.offset >= 0 else { return ownPayloads[-1 - frame.offset] }
        return payloads.getSlice(at: frame.offset, length: frame.length)!
    }

    /// Parses what `input` adds to the stream. After a breach it reads nothing more.
    mutating func read(_ input: ByteBuffer, allocator: ByteBufferAllocator) {
        frames.removeAll(keepingCapacity: true)
        if !ownPayloads.isEmpty { ownPayloads.removeAll(keepingCapacity: true) }
        guard violation == nil else { return }
        var source = input
        let isCarried = partial != nil
        if var carried = partial.take() {
            carried.writeImmutableBuffer(input)
            source = carried
        }
        // Until its first frame is whole, a read only adds to the carried bytes: a large
        // frame arriving over many reads must not size (and drop) a payload buffer each time.
        guard firstFrameIsComplete(in: source) else {
            return carry(source, isCarried: isCarried, allocator: allocator)
        }
        var output = ByteBuffer()
        swap(&output, &payloads)
        // Payloads never exceed the bytes that carry them.
        output.clear(minimumCapacity: source.readableBytes)
        var frames = self.frames
        self.frames = []
        var consumed = 0
        _ = source.withUnsafeReadableBytes { bytes in
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { out in
                var written = 0
                while consumed < bytes.count {
                    let rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
                    let header: FrameHeader
                    do throws(FrameViolation) {
                        guard let parsed = try FrameHeader(parsing: rest) else { break }
                        header = parsed
                        try Self.check(header, fragmentedBytes: fragmentedBytes, maxMessageBytes: maxMessageBytes)
                    } catch {
                        violation = error
                        break
                    }
                    guard rest.count - header.size >= header.payloadLength else { break }
                    let masked = rest.baseAddress! + header.size
                    // A fragment is copied into its joined message anyway: no buffer of its own.
                    if header.payloadLength >= ownBuffersFrom, header.fin, header.opcode != .continuation {
                        var own = allocator.buffer(capacity: header.payloadLength)
                        own.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { own in
                            Unmask.copy(from: masked, to: own.baseAddress!, count: header.payloadLength, key: header.maskKey!)
                            return header.payloadLength
                        }
                        ownPayloads.append(own)
                        frames.append(Frame(opcode: header.opcode, fin: header.fin, offset: -ownPayloads.count, length: header.payloadLength))
                    } else {
                        Unmask.copy(from: masked, to: out.baseAddress! + written, count: header.payloadLength, key: header.maskKey!)
                        frames.append(Frame(opcode: header.opcode, fin: header.fin, offset: written, length: header.payloadLength))
                        written += header.payloadLength
                    }
                    advance(past: header)
                    consumed += header.size + header.payloadLength
                }
                return written
            }
        }
        self.frames = frames
        payloads = output
        guard violation == nil, consumed < source.readableBytes else { return }
        source.moveReaderIndex(forwardBy: consumed)
        carry(source, isCarried: isCarried && consumed == 0, allocator: allocator)
    }

    /// Whether `source` starts with a whole frame; a breach in its header counts as whole, so
    /// that the frame loop reports it (an oversized frame is refused from its header alone).
    private func firstFrameIsComplete(in source: ByteBuffer) -> Bool {
        source.withUnsafeReadableBytes { bytes in
            do throws(FrameViolation) {
                guard let header = try FrameHeader(parsing: bytes) else { return false }
                try Self.check(header, fragmentedBytes: fragmentedBytes, maxMessageBytes: maxMessageBytes)
                return bytes.count - header.size >= header.payloadLength
            } catch {
                return true
            }
        }
    }

    /// Keeps the bytes of an unfinished frame for the next read. The buffer grows by doubling
    /// as the frame arrives (linear time), and is not sized from a header alone: a client
    /// can't make the host reserve megabytes by sending a few bytes.
    private mutating func carry(_ rest: ByteBuffer, isCarried: Bool, allocator: ByteBufferAllocator) {
        if isCarried {
            partial = rest
        } else {
            var carried = allocator.buffer(capacity: max(min(rest.readableBytes * 2, Self.keptCapacity), rest.readableBytes))
            carried.writeImmutableBuffer(rest)
            partial = carried
        }
    }

    /// The whole message `frame` completes (text or binary), joining fragments; nil while a
    /// fragmented message goes on. For data frames only, in the order `frames` gives them.
    mutating func message(completedBy frame: Frame, allocator: ByteBufferAllocator) -> (opcode: WebSocketOpcode, payload: ByteBuffer)? {
        let payload = payload(of: frame)
        if frame.opcode != .continuation {
            if frame.fin { return (frame.opcode, payload) }
            var joined = allocator.buffer(capacity: max(payload.readableBytes * 2, 256))
            joined.writeImmutableBuffer(payload)
            fragments = (frame.opcode, joined)
            return nil
        }
        fragments!.payload.writeImmutableBuffer(payload)
        guard frame.fin else { return nil }
        return fragments.take()
    }

    /// Lets go of a payload buffer grown by a large message, and of the read's own payload
    /// buffers, once its frames are handed on: an idle connection holds none of them.
    mutating func releaseLargeBuffer() {
        if payloads.capacity > Self.keptCapacity { payloads = ByteBuffer() }
        if !ownPayloads.isEmpty { ownPayloads.removeAll(keepingCapacity: true) }
    }

    /// The rules of RFC 6455 §5 a frame must meet on its own and in its message; checked as
    /// soon as its header arrives, so an oversized frame is refused before it is buffered.
    /// Static: called on `self` from the read's closures, a method copied the whole reader
    /// (its buffers retained and released) for every frame.
    private static func check(_ header: FrameHeader, fragmentedBytes: Int?, maxMessageBytes: Int) throws(FrameViolation) {
        guard header.maskKey != nil else { throw FrameViolation(.protocolError, "client frames must be masked") }
        guard !header.reservedBits else { throw FrameViolation(.protocolError, "reserved bits set without an extension") }
        switch header.opcode {
        case .ping, .pong, .connectionClose:
            guard header.fin else { throw FrameViolation(.protocolError, "a control frame must not be fragmented") }
            guard header.payloadLength <= 125 else { throw FrameViolation(.protocolError, "a control frame carries at most 125 bytes") }
        case .binary, .text:
            guard fragmentedBytes == nil else {
                throw FrameViolation(.protocolError, "a new message began before the fragmented one ended")
            }
            try checkSize(header.payloadLength, maxMessageBytes: maxMessageBytes)
        case .continuation:
            guard let sofar = fragmentedBytes else {
                throw FrameViolation(.protocolError, "a continuation frame without a message to continue")
            }
            try checkSize(header.payloadLength, after: sofar, maxMessageBytes: maxMessageBytes)
        default:
            throw FrameViolation(.protocolError, "unknown opcode \(UInt8(webSocketOpcode: header.opcode))")
        }
    }

    /// Follows the fragmented message through a frame that has been read whole.
    private mutating func advance(past header: FrameHeader) {
        guard !header.opcode.isControlOpcode else { return }
        fragmentedBytes = header.fin ? nil : (fragmentedBytes ?? 0) + header.payloadLength
    }

    /// `bytes` more after `sofar` (never over the limit): compared with what is left, as a
    /// continuation may announce up to 2^63 - 1 bytes, which added to `sofar` overflowed (a
    /// trap that ended the host).
    private static func checkSize(_ bytes: Int, after sofar: Int = 0, maxMessageBytes: Int) throws(FrameViolation) {
        guard bytes <= maxMessageBytes - sofar else {
            throw FrameViolation(.messageTooLarge, "the message exceeds \(maxMessageBytes) bytes")
        }
    }
}
