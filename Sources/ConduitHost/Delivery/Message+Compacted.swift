import ConduitWire
import NIOCore

extension ByteBuffer {
    /// Whether keeping this buffer holds little more memory than its own bytes (at most twice
    /// them, plus 4 KiB).
    var isCompact: Bool { storageCapacity <= 2 * readableBytes + 4096 }
}

extension Message {
    /// The message, its payload copied into storage of its own unless it is compact. A payload
    /// is often a slice of a whole read's buffer (the frame reader's, NIOSSL's, a NATS or
    /// child-process decoder's); kept past that read (in a queue, in the resume window), it kept
    /// the whole buffer alive (a 1-byte echo or push a megabyte), where the budget counts its bytes.
    func compacted() -> Message {
        guard !payload.isCompact else { return self }
        var copy = self
        copy.payload = ByteBuffer(buffer: payload)
        return copy
    }
}
