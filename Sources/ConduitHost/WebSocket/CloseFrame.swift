import NIOWebSocket
import NIOCore

/// RFC 6455 §7.4 close codes, as a server checks a client's close frame.
enum CloseFrame {
    /// The code to answer a client's close frame with: its own code when valid, 1002 for an
    /// invalid code or a one-byte body, 1007 for a reason that is not UTF-8; nil for an empty body.
    static func replyCode(to payload: inout ByteBuffer) -> WebSocketErrorCode? {
        guard payload.readableBytes > 0 else { return nil }
        guard let raw = payload.readInteger(as: UInt16.self) else { return .protocolError }
        guard isValid(raw) else { return .protocolError }
        guard payload.withUnsafeReadableBytes({ String(validating: $0, as: UTF8.self) }) != nil else {
            return .dataInconsistentWithMessage
        }
        return WebSocketErrorCode(codeNumber: Int(raw))
    }

    /// Codes a peer may send: the defined ones that are not reserved for local use, and the
    /// ranges for libraries (3000–3999) and applications (4000–4999).
    static func isValid(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1011, 3000...4999: true
        default: false
        }
    }
}
