public import ConduitWire
public import NIOCore

/// A push numbered `n` (route `test.push`, header `n`, payload `push n`, or `payload`): tests push
/// these and check that they arrive in order, none lost or twice.
public func numberedPush(_ n: Int, payload: ByteBuffer? = nil) -> Message {
    Message(headers: ["route": "test.push", "n": "\(n)"], payload: payload ?? ByteBuffer(string: "push \(n)"))
}

/// `count` bytes that differ with `n` and with their offset, so a part of another message, or
/// one out of place, shows when a large payload is compared with what was sent.
public func patternedBytes(_ n: Int, count: Int) -> ByteBuffer {
    ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: n &* 131 &+ $0 &+ $0 / 251) })
}
