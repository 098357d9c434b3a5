/// Reads the encoding's fields (SPEC §1) from raw bytes: every read is bounds-checked, and a
/// read past the end is nil or a typed error, never a crash.
/// Its reads are inlined into the decoder (four calls a header field were a tenth of a small
/// message's decoding); the errors are made out of line.
struct WireReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wrapping arithmetic throughout: `offset` never passes `bytes.count` (every step is checked
    /// against `remaining` first), so the overflow checks of `+` and `-` and a slice's range
    /// checks could never fail; they were a fifth of each header field's decoding.
    var remaining: Int { bytes.count &- offset }

    /// A big-endian integer, or nil when too few bytes are left.
    @inline(__always)
    mutating func readInteger<Integer: FixedWidthInteger>(as: Integer.Type) -> Integer? {
        let size = MemoryLayout<Integer>.size
        guard remaining >= size else { return nil }
        defer { offset &+= size }
        return Integer(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Integer.self))
    }

    /// A length-prefixed field's bytes.
    @inline(__always)
    mutating func readField<Length: FixedWidthInteger>(lengthPrefix: Length.Type, field: Message.Field) throws(WireError) -> UnsafeRawBufferPointer {
        guard let prefix = readInteger(as: Length.self) else { throw Self.truncatedBeforeLength(of: field) }
        let length = Int(prefix)
        guard length <= remaining, let base = bytes.baseAddress else { throw Self.truncated(field, declared: length, remaining: remaining) }
        defer { offset &+= length }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }

    @inline(never)
    private static func truncatedBeforeLength(of field: Message.Field) -> WireError {
        WireError(.truncated, "the message ends before the length of the \(field)")
    }

    @inline(never)
    private static func truncated(_ field: Message.Field, declared length: Int, remaining: Int) -> WireError {
        WireError(.truncated, "the \(field) is declared as \(length) bytes but \(remaining) follow")
    }
}
