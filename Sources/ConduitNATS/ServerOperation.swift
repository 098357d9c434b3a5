import Foundation
import NIOCore

/// One operation the server sends.
enum ServerOperation: Sendable {
    case info(NATSServerInfo)
    case message(NATSMessage, subscription: Int)
    /// A message framed right whose header block can't be read: it alone is lost (a publisher,
    /// not the server, wrote its headers: closing the connection for them failed every
    /// request in flight on it, again each time the message was sent).
    case malformed(subject: String, subscription: Int, NATSError)
    case ping
    case pong
    case ok
    case error(String)
}

/// Splits the server's byte stream into operations. Every line and every message body is
/// bounded, so a hostile or broken server can't make the client buffer without limit.
struct ServerOperationDecoder: ByteToMessageDecoder {
    typealias InboundOut = ServerOperation

    let maxControlLineBytes: Int
    /// The server's max_payload as last announced (a message body may not exceed it by much);
    /// before its INFO, NATS's default (1 MiB), with the same room for headers.
    var maxMessageBytes = (1 << 20) + (64 << 10)

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let operation = try next(from: &buffer) else { return .needMoreData }
        // Headers ride on top of max_payload; a server announcing more than 64 MiB is not believed.
        if case .info(let info) = operation { maxMessageBytes = min(max(info.maxPayload, 1 << 16), 64 << 20) + (64 << 10) }
        context.fireChannelRead(wrapInboundOut(operation))
        return .continue
    }

    mutating func next(from buffer: inout ByteBuffer) throws(NATSError) -> ServerOperation? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maxControlLineBytes { throw .protocolViolation("a line over \(maxControlLineBytes) bytes") }
            return nil
        }
        let lineLength = newline - view.startIndex
        guard lineLength <= maxControlLineBytes else { throw .protocolViolation("a line over \(maxControlLineBytes) bytes") }
        var line = view[view.startIndex..<newline]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        let words = line.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
        guard let verb = words.first.map({ String(decoding: $0, as: UTF8.self).uppercased() }) else {
            throw .protocolViolation("an empty line")
        }
        let arguments = words.dropFirst().map { String(decoding: $0, as: UTF8.self) }
        switch verb {
        case "MSG", "HMSG":
            return try message(arguments, hasHeaders: verb == "HMSG", afterLine: lineLength + 1, in: &buffer)
        case "INFO":
            let json = line.drop { $0 != UInt8(ascii: "{") }
            guard let info = try? JSONDecoder().decode(NATSServerInfo.self, from: Data(json)) else {
                throw .protocolViolation("INFO that is not JSON")
            }
            buffer.moveReaderIndex(forwardBy: lineLength + 1)
            return .info(info)
        case "PING", "PONG", "+OK", "-ERR":
            let text = String(decoding: line.dropFirst(4), as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: " '"))
            buffer.moveReaderIndex(forwardBy: lineLength + 1)
            return switch verb {
            case "PING": .ping
            case "PONG": .pong
            case "+OK": .ok
            default: .error(text)
            }
        default:
            throw .protocolViolation("unknown operation '\(verb.prefix(16))'")
        }
    }

    /// `MSG <subject> <sid> [reply-to] <#bytes>` or
    /// `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`, then the body and CRLF.
    private func message(_ arguments: [String], hasHeaders: Bool, afterLine: Int, in buffer: inout ByteBuffer) throws(NATSError) -> ServerOperation? {
        let counts = hasHeaders ? 2 : 1
        guard arguments.count == 2 + counts || arguments.count == 3 + counts,
              let sid = Int(arguments[1]),
              let total = Int(arguments[arguments.count - 1]), (0...maxMessageBytes).contains(total)
        else { throw .protocolViolation("a malformed \(hasHeaders ? "HMSG" : "MSG") line") }
        let headerBytes = hasHeaders ? Int(arguments[arguments.count - 2]) ?? -1 : 0
        guard (0...total).contains(headerBytes) else { throw .protocolViolation("header bytes outside the message") }
        guard buffer.readableBytes >= afterLine + total + 2 else { return nil }
        buffer.moveReaderIndex(forwardBy: afterLine)
        var message = NATSMessage(
            subject: arguments[0], replyTo: arguments.count == 3 + counts ? arguments[2] : nil,
            payload: buffer.readSlice(length: total)!)
        // A byte count that is off would have the next operation read from the wrong place.
        guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw .protocolViolation("a message not ended by CRLF after its \(total) bytes") }
        if hasHeaders {
            let block = message.payload.readSlice(length: headerBytes)!
            do {
                (message.headers, message.status, message.statusDescription) = try NATSHeaders.parse(block)
            } catch {
                return .malformed(subject: message.subject, subscription: sid, error)
            }
        }
        return .message(message, subscription: sid)
    }
}
