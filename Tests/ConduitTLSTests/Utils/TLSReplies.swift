import ConduitWire
import Foundation
import NIOCore
import Testing

private struct DataEnvelope<Value: Decodable>: Decodable { let data: Value }
private struct ErrorEnvelope: Decodable {
    struct Err: Decodable { let type: String; let message: String }
    let err: Err
}

extension Message {
    /// The `{"data": …}` of a successful reply; records an issue with the error otherwise.
    func data<Value: Decodable>(_ type: Value.Type) throws -> Value {
        #expect(headers["error"] == nil, "\(String(buffer: payload))")
        return try JSONDecoder().decode(DataEnvelope<Value>.self, from: Data(payload.readableBytesView)).data
    }

    /// The error type and message of an error reply (nil when it is not one).
    var failure: (type: String, message: String)? {
        guard let type = headers["error"],
              let envelope = try? JSONDecoder().decode(ErrorEnvelope.self, from: Data(payload.readableBytesView))
        else { return nil }
        #expect(envelope.err.type == type)
        return (type, envelope.err.message)
    }
}

/// `tls.echoService`'s answer.
struct EchoServiceInfo: Decodable {
    let host: String
    let port: Int
    let certificatePEM: String
    let connections: Int
    let refused: Int
}

/// `tls.connect`'s answer.
struct ConnectSummary: Decodable {
    let host: String
    let port: Int
    let servername: String?
    let verified: Bool
}
