public import ConduitWire
import Foundation
import NIOCore

extension Message {
    /// The value of a JSON result reply (`{"data": …}`, SPEC §3), decoded as `Value`.
    public func decodeData<Value: Decodable>(as type: Value.Type = Value.self) throws -> Value {
        try JSONDecoder().decode(DataEnvelope<Value>.self, from: Data(payload.readableBytesView)).data
    }
}

private struct DataEnvelope<Value: Decodable>: Decodable {
    let data: Value
}
