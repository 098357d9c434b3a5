import Logging
import NIOCore

/// Cuts the child's stderr into lines; a line longer than `maxLength` is cut into pieces.
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String
    let maxLength = 8192

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n"))
        guard let end = newline ?? (buffer.readableBytes >= maxLength ? buffer.readerIndex + maxLength : nil) else {
            return .needMoreData
        }
        var line = buffer.readString(length: end - buffer.readerIndex)!
        if newline != nil { buffer.moveReaderIndex(forwardBy: 1) }
        if line.hasSuffix("\r") { line.removeLast() }
        context.fireChannelRead(Self.wrapInboundOut(line))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            context.fireChannelRead(Self.wrapInboundOut(buffer.readString(length: buffer.readableBytes)!))
        }
        return .needMoreData
    }
}

/// Forwards each stderr line of the child to the host log, and to `onLine` (on the channel's
/// event loop), which keeps the last one to tell a client why the child died.
final class StderrForwarder: ChannelInboundHandler {
    typealias InboundIn = String
    private let logger: Logger
    private let onLine: (String) -> Void

    init(logger: Logger, pid: Int32, onLine: @escaping (String) -> Void) {
        var logger = logger
        logger[metadataKey: "process.pid"] = "\(pid)"
        self.logger = logger
        self.onLine = onLine
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        logger.info("handler process stderr", metadata: ["process.stderr": "\(line)"])
        onLine(line)
    }
}
