import Foundation
import NIOCore

/// One operation the client sends.
enum ClientOperation: Sendable {
    case connect(ConnectFields)
    case publish(subject: String, replyTo: String?, headers: NATSHeaders, payload: ByteBuffer)
    case subscribe(subject: String, queue: String?, subscription: Int)
    case unsubscribe(subscription: Int)
    case ping
    case pong
}

/// The JSON of CONNECT.
struct ConnectFields: Encodable, Sendable {
    var verbose = false
    var pedantic = false
    var tls_required: Bool
    var name: String
    var lang = "swift"
    var version = "1.0.0"
    var `protocol` = 1
    var headers = true
    var no_responders = true
    var user: String?
    var pass: String?
    var auth_token: String?
}

struct ClientOperationEncoder: MessageToByteEncoder {
    typealias OutboundIn = ClientOperation

    func encode(data operation: ClientOperation, out: inout ByteBuffer) throws {
        switch operation {
        case .connect(let fields):
            out.writeString("CONNECT ")
            out.writeBytes(try JSONEncoder().encode(fields))
            out.writeString("\r\n")
        case .publish(let subject, let replyTo, let headers, var payload):
            let reply = replyTo.map { " \($0)" } ?? ""
            if headers.isEmpty {
                out.writeString("PUB \(subject)\(reply) \(payload.readableBytes)\r\n")
            } else {
                let headerBytes = headers.encodedBytes
                out.writeString("HPUB \(subject)\(reply) \(headerBytes) \(headerBytes + payload.readableBytes)\r\n")
                headers.write(to: &out)
            }
            out.writeBuffer(&payload)
            out.writeString("\r\n")
        case .subscribe(let subject, let queue, let sid):
            out.writeString("SUB \(subject)\(queue.map { " \($0)" } ?? "") \(sid)\r\n")
        case .unsubscribe(let sid):
            out.writeString("UNSUB \(sid)\r\n")
        case .ping:
            out.writeString("PING\r\n")
        case .pong:
            out.writeString("PONG\r\n")
        }
    }
}
