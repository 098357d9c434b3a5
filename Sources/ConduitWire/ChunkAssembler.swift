public import NIOCore

/// Joins the payloads of a multi-part message (SPEC §1), with a cap on the queued bytes.
///
/// The host uses one per connection for client chunks; clients use one to join host parts
/// marked `more=true`. The chunk that takes the queue past the cap empties it and is refused
/// with `payloadTooLarge`; the next chunk starts a new queue.
public struct ChunkAssembler: Sendable {
    public let limit: Int
    private var parts: [ByteBuffer] = []
    public private(set) var queuedBytes = 0

    public init(limit: Int) {
        self.limit = limit
    }

    public var isEmpty: Bool { parts.isEmpty }

    /// Queues one chunk. `bytes`: what it keeps in memory, if more than its payload (the host
    /// counts the whole encoded message: a payload slice pins its headers too).
    public mutating func append(_ chunk: ByteBuffer, bytes: Int? = nil) throws(WireError) {
        try reserve(bytes ?? chunk.readableBytes)
        parts.append(chunk)
    }

    /// Completes the queued request with its final payload and empties the queue. With nothing
    /// queued, `last` is returned as it is (no copy).
    public mutating func complete(with last: ByteBuffer) throws(WireError) -> ByteBuffer {
        guard !parts.isEmpty else { return last }
        try reserve(last.readableBytes)
        var joined = ByteBuffer()
        joined.reserveCapacity(queuedBytes)
        for var part in parts { joined.writeBuffer(&part) }
        var last = last
        joined.writeBuffer(&last)
        reset()
        return joined
    }

    public mutating func reset() {
        parts.removeAll(keepingCapacity: true)
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
