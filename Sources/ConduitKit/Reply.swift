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

    /// `json(value)` as an outcome: a value that can't be encoded is an `InternalError`.
    public static func jsonOutcome(_ value: some Encodable) -> Result<Reply, ConduitError> {
        do { return .success(try .json(value)) } catch {
            return .failure(.internal("the result could not be encoded as JSON: \(error)"))
        }
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
