public import NIOCore

/// Joins the payloads of a multi-part message (SPEC §1), with a cap on the queued bytes.
///
/// The host uses one per connection for client chunks; clients use one to join host parts
/// marked `more=true`. The chunk that takes the queue past the cap empties it and is refused
/// with `payloadTooLarge`; the next chunk starts a new queue.
///
/// A chunk's bytes are copied in as it comes, not kept as it came: a chunk is a slice of a
/// whole read's buffer, and a queue of slices kept every such buffer alive (an empty chunk
/// after a 1 MB message pinned the megabyte) while only the chunks' bytes were counted.
public struct ChunkAssembler: Sendable {
    public let limit: Int
    private var joined = ByteBuffer()
    private var chunks = 0
    /// What the queued chunks count against `limit`: their payloads, or what the caller said
    /// each holds (the host counts whole encoded messages).
    public private(set) var queuedBytes = 0

    public init(limit: Int) {
        self.limit = limit
    }

    public var isEmpty: Bool { chunks == 0 }

    /// Queues one chunk. `bytes`: what it counts, if more than its payload.
    public mutating func append(_ chunk: ByteBuffer, bytes: Int? = nil) throws(WireError) {
        try reserve(bytes ?? chunk.readableBytes)
        joined.writeImmutableBuffer(chunk)
        chunks += 1
    }

    /// Completes the queued request with its final payload and empties the queue. With nothing
    /// queued, `last` is returned as it is (no copy).
    public mutating func complete(with last: ByteBuffer) throws(WireError) -> ByteBuffer {
        guard chunks > 0 else { return last }
        try reserve(last.readableBytes)
        var result = ByteBuffer()
        swap(&result, &joined)
        result.writeImmutableBuffer(last)
        reset()
        return result
    }

    /// Empties the queue and lets its storage go.
    public mutating func reset() {
        joined = ByteBuffer()
        chunks = 0
        queuedBytes = 0
    }

    private mutating func reserve(_ count: Int) throws(WireError) {
        guard queuedBytes + count <= limit else {
            let total = queuedBytes + count
            reset()
            throw WireError(.payloadTooLarge, "the queued chunks reach \(total) bytes; the limit is \(limit)")
        }
        queuedBytes += count
    }
}
