import ConduitWire
import NIOCore

extension Message {
    /// Storage a kept payload may pin beyond twice its own bytes.
    private static let pinnedSlackBytes = 4096

    /// The message, its payload copied into storage of its own when it pins far more memory
    /// than it holds. A payload is often a slice of a whole read's buffer (the frame reader's,
    /// NIOSSL's, a NATS or child-process decoder's); kept past that read in a queue, it kept the
    /// whole buffer alive (a 1-byte echo or push a megabyte), where the budget counts its bytes.
    func compacted() -> Message {
        guard payload.storageCapacity > 2 * payload.readableBytes + Self.pinnedSlackBytes else { return self }
        var own = ByteBufferAllocator().buffer(capacity: payload.readableBytes)
        own.writeImmutableBuffer(payload)
        return Message(headers: headers, payload: own)
    }
}
