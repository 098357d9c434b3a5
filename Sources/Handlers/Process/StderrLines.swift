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

/// Forwards the child's stderr lines to the host log, up to `linesPerSecond`, and each line
/// to `onLine` (on the channel's event loop), which keeps the last one to tell a client why the
/// child died. Past the rate, lines are counted, not logged, and the count is logged once a
/// second: a child writing stderr as fast as it could grew the log by 53 MB in 5 s and slowed
/// every other client's messages twentyfold.
final class StderrForwarder: ChannelInboundHandler {
    typealias InboundIn = String
    static let linesPerSecond = 200
    private let logger: Logger
    private let onLine: (String) -> Void
    private var second = NIODeadline.now()
    private var loggedThisSecond = 0
    private var unlogged = 0

    init(logger: Logger, pid: Int32, onLine: @escaping (String) -> Void) {
        var logger = logger
        logger[metadataKey: "process.pid"] = "\(pid)"
        self.logger = logger
        self.onLine = onLine
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        onLine(line)
        let now = NIODeadline.now()
        if now - second >= .seconds(1) {
            reportUnlogged()
            second = now
            loggedThisSecond = 0
        }
        guard loggedThisSecond < Self.linesPerSecond else {
            unlogged += 1
            return
        }
        loggedThisSecond += 1
        logger.info("handler process stderr", metadata: ["process.stderr": "\(line)"])
    }

    func channelInactive(context: ChannelHandlerContext) {
        reportUnlogged()
        context.fireChannelInactive()
    }

    private func reportUnlogged() {
        guard unlogged > 0 else { return }
        logger.warning("handler process stderr lines not logged", metadata: [
            "process.stderr.unlogged": "\(unlogged)", "process.stderr.limit": "\(Self.linesPerSecond) lines a second",
        ])
        unlogged = 0
    }
}
