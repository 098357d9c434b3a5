public import ConduitWire
import NIOCore

/// A push numbered `n` (route `test.push`, header `n`, payload `push n`): tests push these and
/// check that they arrive in order, none lost or twice.
public func numberedPush(_ n: Int) -> Message {
    Message(headers: ["route": "test.push", "n": "\(n)"], payload: ByteBuffer(string: "push \(n)"))
}
