/// A header name of at most 8 bytes as its length and its bytes packed in an integer: a layer's
/// own names (resume's `pos` and `ack`), which the codec compares with every header's name.
/// Names of another length are ruled out by it, the others by one comparison of two integers
/// (a generic byte-by-byte comparison showed in the routed echo's profile).
struct PackedName: Sendable {
    static let maxBytes = 8

    /// -1 for no name, which matches none.
    let length: Int
    /// The bytes, the first one highest.
    let packed: UInt64

    /// Matches no name.
    init() {
        length = -1
        packed = 0
    }

    init(_ name: some Collection<UInt8>) {
        precondition(!name.isEmpty && name.count <= Self.maxBytes, "a layer's field name has 1 to \(Self.maxBytes) bytes")
        length = name.count
        packed = Self.pack(name)
    }

    init(_ name: StaticString) {
        self.init(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    @inline(__always)
    static func pack(_ bytes: some Sequence<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 &<< 8 | UInt64($1) }
    }

    /// `pack` of a name read from a message (1 to 8 bytes long), from one 8-byte load when
    /// `readable` bytes from its start allow it (a loop a byte showed in the decoder's profile).
    @inline(__always)
    static func pack(_ name: UnsafeRawBufferPointer, readable: Int) -> UInt64 {
        guard readable >= 8 else { return pack(name) }
        return UInt64(bigEndian: name.baseAddress.unsafelyUnwrapped.loadUnaligned(as: UInt64.self)) &>> UInt64(64 &- 8 &* name.count)
    }

    @inline(__always)
    func matches(length: Int, packed: UInt64) -> Bool {
        length == self.length && packed == self.packed
    }

    /// Writes the key as encoded (its length, then its bytes) at `out`; returns the bytes written.
    func write(into out: UnsafeMutableRawPointer) -> Int {
        out.storeBytes(of: UInt8(truncatingIfNeeded: length), as: UInt8.self)
        for index in 0..<length {
            out.storeBytes(of: UInt8(truncatingIfNeeded: packed &>> UInt64(8 &* (length &- 1 &- index))), toByteOffset: 1 &+ index, as: UInt8.self)
        }
        return 1 &+ length
    }
}
