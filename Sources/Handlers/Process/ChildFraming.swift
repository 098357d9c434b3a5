import ConduitWire
import NIOCore

/// The framing on the child's stdin and stdout: a uint32 BE length, then one encoded Conduit
/// message (SPEC §1). Payloads over 65,535 bytes travel as consecutive parts, every part but
/// the last with `more=true` (`Message.split`), in both directions.
enum ChildFraming {
    /// The largest encoded message the codec can produce; a longer frame is garbage.
    static let maxFrameBytes = 1 + WireLimits.maxHeaders * (1 + WireLimits.maxKeyBytes + 2 + WireLimits.maxValueBytes)
        + 2 + WireLimits.maxPayloadBytes

    /// A frame's length, before its message.
    static let lengthBytes = MemoryLayout<UInt32>.size

    /// Appends `message`, split into parts when its payload needs it, each part framed.
    static func write(_ message: Message, into buffer: inout ByteBuffer) throws(WireError) {
        for part in message.split() {
            try part.validateLimits()
            buffer.writeInteger(UInt32(part.encodedSize))
            try part.encode(into: &buffer)
        }
    }
}

/// What the child wrote that is not a framed message: the stream can't be trusted after it.
struct MalformedChildOutput: Error, CustomStringConvertible {
    let description: String
}

/// Cuts the child's stdout into messages.
struct ChildFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Message

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length <= ChildFraming.maxFrameBytes else {
            let start = buffer.getString(at: buffer.readerIndex, length: min(buffer.readableBytes, 40)) ?? ""
            throw MalformedChildOutput(description: "a frame length of \(length) bytes (at most \(ChildFraming.maxFrameBytes)); the output starts with \(start.debugDescription): is the child printing to stdout? Write logs to stderr")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let frame = buffer.readSlice(length: Int(length))!
        do {
            context.fireChannelRead(Self.wrapInboundOut(try Message(decoding: frame)))
        } catch {
            throw MalformedChildOutput(description: "a frame that is not a Conduit message: \(error)")
        }
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
