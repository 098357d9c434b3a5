public import ConduitWire
public import NIOCore
import Foundation

/// What a handler answers. The host adds `route` and the request's `token` (SPEC §3).
public struct Reply: Sendable {
    public var headers: Headers
    public var payload: ByteBuffer

    public init(headers: Headers = [:], payload: ByteBuffer = ByteBuffer()) {
        self.headers = headers
        self.payload = payload
    }

    /// A JSON result: payload `{"data": value}`.
    public static func json(_ value: some Encodable, headers: Headers = [:]) throws -> Reply {
        let data = try JSONEncoder.conduit.encode(DataEnvelope(data: value))
        return Reply(headers: headers, payload: ByteBuffer(data: data))
    }
}

private struct DataEnvelope<Value: Encodable>: Encodable {
    let data: Value
}

extension JSONEncoder {
    /// Sorted keys, so replies are stable for tests and diffs.
    package static var conduit: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension ByteBuffer {
    init(data: Data) {
        self.init(bytes: data)
    }
}
