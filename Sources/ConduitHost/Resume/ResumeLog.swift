import NIOCore

/// The encoded messages of a resume window that are kept as bytes, oldest first: appended at
/// the end, released from the start (`ResumeState`).
///
/// Storage of its own rather than a `ByteBuffer`: every write to a buffer checks its capacity
/// and uniqueness and pays a run-time exclusivity check, about 200 instructions a message of
/// the resuming routed echo (a seventh of what resume adds), for bytes that only their id's
/// lock ever touches. It grows as a buffer does (to a power of two), which
/// `capacity(appending:)` foresees for the budget's charge. Never copied: a copy would share
/// its storage, and write over it.
struct ResumeLog: Sendable {
    /// Unchecked: its bytes are written only by the log that holds it, under its id's lock.
    private final class Storage: @unchecked Sendable {
        let bytes: UnsafeMutableRawPointer
        let capacity: Int

        init(capacity: Int) {
            bytes = .allocate(byteCount: capacity, alignment: 1)
            self.capacity = capacity
        }

        deinit { bytes.deallocate() }
    }

    private var storage: Storage?
    private var readerIndex = 0
    private var writerIndex = 0

    var capacity: Int { storage?.capacity ?? 0 }
    var readableBytes: Int { writerIndex - readerIndex }
    var writableBytes: Int { capacity - writerIndex }

    /// The capacity once `append` has added `count` bytes.
    func capacity(appending count: Int) -> Int {
        guard writableBytes < count else { return capacity }
        let end = (movesToStart ? readableBytes : writerIndex) + count
        return end <= capacity ? capacity : end.grownBufferCapacity
    }

    /// When what is left does not fit at the end, it moves to the start if the released part
    /// ahead of it is at least as large (else the log grows): each byte is moved at most once
    /// for each byte released, and the capacity stays within about four times the most the log
    /// held since it was last empty (twice, before rounding up to a power of two).
    private var movesToStart: Bool { readerIndex >= readableBytes }

    /// Appends `encoded`, growing the storage if it does not fit.
    mutating func append(_ encoded: UnsafeRawBufferPointer) {
        if writableBytes < encoded.count { makeRoom(for: encoded.count) }
        // `makeRoom` leaves storage whenever there is anything to append.
        guard let source = encoded.baseAddress, encoded.count > 0, let storage else { return }
        (storage.bytes + writerIndex).copyMemory(from: source, byteCount: encoded.count)
        writerIndex += encoded.count
    }

    /// As `append(_:)`, for bytes the caller made sure fit (`writableBytes`): nearly always
    /// they do, and this is inlined (a call that handled growth cost twice the copy's own
    /// instructions). `encoded` holds at least a byte.
    @inline(__always)
    mutating func appendFitting(_ encoded: UnsafeRawBufferPointer) {
        // Room for a byte means storage.
        guard let storage, let source = encoded.baseAddress, encoded.count <= writableBytes else {
            preconditionFailure("\(encoded.count) bytes do not fit the log's \(writableBytes)")
        }
        (storage.bytes + writerIndex).copyMemory(from: source, byteCount: encoded.count)
        writerIndex &+= encoded.count
    }

    private mutating func makeRoom(for count: Int) {
        let newCapacity = capacity(appending: count)
        let readable = readableBytes
        if newCapacity > capacity {
            let grown = Storage(capacity: newCapacity)
            if let storage, readable > 0 { grown.bytes.copyMemory(from: storage.bytes + readerIndex, byteCount: readable) }
            storage = grown
        } else if let storage, readable > 0 {
            storage.bytes.copyMemory(from: storage.bytes + readerIndex, byteCount: readable)
        }
        readerIndex = 0
        writerIndex = readable
    }

    /// The oldest `count` bytes leave the log.
    mutating func release(_ count: Int) {
        precondition(count <= readableBytes, "released \(count) bytes of a log holding \(readableBytes)")
        readerIndex += count
    }

    /// Empty, its storage kept.
    mutating func clear() {
        readerIndex = 0
        writerIndex = 0
    }

    /// `count` of its bytes from `offset` (counted from the oldest) in a buffer of their own.
    func copy(at offset: Int, count: Int) -> ByteBuffer {
        precondition(offset >= 0 && offset + count <= readableBytes, "bytes \(offset)..<\(offset + count) of a log holding \(readableBytes)")
        guard count > 0, let storage else { return ByteBuffer() }
        return ByteBuffer(bytes: UnsafeRawBufferPointer(start: storage.bytes + readerIndex + offset, count: count))
    }

    /// The same bytes in storage of their size (none when empty).
    func compacted() -> ResumeLog {
        var log = ResumeLog()
        guard readableBytes > 0, let storage else { return log }
        let compact = Storage(capacity: readableBytes)
        compact.bytes.copyMemory(from: storage.bytes + readerIndex, byteCount: readableBytes)
        log.storage = compact
        log.writerIndex = readableBytes
        return log
    }
}
