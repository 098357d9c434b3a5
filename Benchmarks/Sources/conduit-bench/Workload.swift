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

    /// The frames (or, for TCP, the one buffer) that make one request.
    func requestBuffers() throws -> [ByteBuffer] {
        let payload = ByteBuffer(repeating: 0x61, count: size)
        switch proto {
        case .conduit:
            return try Message(headers: [HeaderName.route: route], payload: payload).split().map { try $0.encoded() }
        case .websocket, .tcp:
            return [payload]
        }
    }

    /// Whether a received data frame ends a reply.
    func endsReply(_ frame: WebSocketFrame) -> Bool {
        guard frame.fin else { return false }
        guard proto == .conduit else { return true }
        return (try? Message(decoding: frame.data))?.headers.hasMore != true
    }
}
