import ConduitWire
import NIOCore
import NIOWebSocket

/// What one request looks like on the wire and how its reply is recognised.
enum Protocol: String, CaseIterable, Sendable {
    /// Conduit messages with `route`, split into `more=true` parts above 64 KiB; the reply is
    /// complete at the part without `more`.
    case conduit
    /// One binary WebSocket frame echoed by any WebSocket echo server.
    case websocket
    /// Raw bytes echoed by a TCP echo server.
    case tcp
}

struct Workload: Sendable {
    let proto: Protocol
    let route: String
    let size: Int
    /// Resume on: requests carry `pos`, replies are acknowledged (LoadHandler).
    var resume = false

    /// The bytes of one request as they go on the wire: masked WebSocket frames, encoded and
    /// masked once here so the load tool spends no CPU per message on them (NIO's frame encoder
    /// masks byte by byte, which made the tool the bottleneck at 16 KiB), or raw TCP bytes.
    func wireBuffers() throws -> [ByteBuffer] {
        let payload = ByteBuffer(repeating: 0x61, count: size)
        switch proto {
        case .conduit:
            return try Message(headers: [HeaderName.route: route], payload: payload).split().map { Self.maskedFrame(try $0.encoded()) }
        case .websocket:
            return [Self.maskedFrame(payload)]
        case .tcp:
            return [payload]
        }
    }

    /// One request numbered `position` (resume), masked: made per request, as a resuming
    /// client must.
    func numberedWireBuffers(position: UInt64) throws -> [ByteBuffer] {
        let message = Message(headers: [HeaderName.route: route, ResumeHeader.position: "\(position)"], payload: ByteBuffer(repeating: 0x61, count: size))
        return try message.split().map { Self.maskedFrame(try $0.encoded()) }
    }

    /// A bare acknowledgement of host positions up to `position`, masked.
    static func acknowledgement(_ position: UInt64) throws -> ByteBuffer {
        maskedFrame(try Message(headers: [ResumeHeader.ack: "\(position)"]).encoded())
    }

    /// A final binary frame carrying `payload`, masked as a client must (RFC 6455 §5.2).
    static func maskedFrame(_ payload: ByteBuffer) -> ByteBuffer {
        let key: [UInt8] = [0x1F, 0x2E, 0x3D, 0x4C]
        var frame = ByteBuffer()
        frame.writeInteger(UInt8(0x82))
        switch payload.readableBytes {
        case ..<126: frame.writeInteger(UInt8(0x80 | payload.readableBytes))
        case ...0xFFFF:
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(payload.readableBytes))
        default:
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(payload.readableBytes))
        }
        frame.writeBytes(key)
        frame.writeBytes(payload.readableBytesView.enumerated().map { $1 ^ key[$0 % 4] })
        return frame
    }

    /// Whether a received data frame ends a reply.
    func endsReply(_ frame: WebSocketFrame) -> Bool {
        guard frame.fin else { return false }
        guard proto == .conduit else { return true }
        guard let headers = (try? Message(decoding: frame.data))?.headers else { return true }
        // Resume's greeting and acknowledgements are not replies.
        return !headers.hasMore && headers.route != ResumeHeader.resumeRoute && headers.route != ResumeHeader.ackRoute
    }
}
