/// Two header fields whose values are decimal numbers (uint64), which a decoder takes off a
/// message instead of listing them, keeping the last value of each (see
/// `Message.init(decoding:reusing:settingAside:)`). A layer's own fields on every message
/// (resume's `ack` and `pos`): matched on the wire's bytes and parsed from them, so the decoder
/// makes no string of them and compares the others' names only when their lengths match.
public struct SetAsideNumbers: Sendable {
    public enum Value: Sendable, Equatable {
        case absent
        case number(UInt64)
        /// Not a decimal uint64.
        case malformed
    }

    public private(set) var firstValue = Value.absent
    public private(set) var secondValue = Value.absent

    /// The names as compared: their lengths and bytes packed in an integer (none: length -1,
    /// so a plain decode matches nothing).
    private let firstName: PackedName
    private let secondName: PackedName

    /// `first` and `second`: at most 8 bytes of UTF-8 each.
    public init(_ first: String, _ second: String) {
        firstName = PackedName(first.utf8)
        secondName = PackedName(second.utf8)
    }

    /// Sets nothing aside.
    init() {
        firstName = PackedName()
        secondName = PackedName()
    }

    /// A name of up to 8 bytes as one comparison of two integers (a generic byte-by-byte
    /// comparison showed in the routed echo's profile).
    private struct PackedName {
        let length: Int
        let bytes: UInt64

        /// Matches no name.
        init() {
            length = -1
            bytes = 0
        }

        init(_ name: String.UTF8View) {
            precondition(name.count <= 8, "a set-aside field's name has at most 8 bytes")
            length = name.count
            bytes = Self.pack(name)
        }

        static func pack(_ name: some Sequence<UInt8>) -> UInt64 {
            var packed: UInt64 = 0
            for byte in name { packed = packed << 8 | UInt64(byte) }
            return packed
        }

        func matches(length: Int, packed: UInt64) -> Bool {
            length == self.length && packed == bytes
        }
    }

    /// Which of the two `name` is, if either: its bytes are packed (once) only when its length
    /// is one of theirs. Inlined into the decoder's loop: most names are ruled out by length.
    @inline(__always)
    func slot(of name: UnsafeRawBufferPointer) -> Slot? {
        guard name.count == firstName.length || name.count == secondName.length else { return nil }
        let packed = PackedName.pack(name)
        if firstName.matches(length: name.count, packed: packed) { return .first }
        return secondName.matches(length: name.count, packed: packed) ? .second : nil
    }

    enum Slot { case first, second }

    /// Keeps `digits`, parsed, as the value of `slot`, and returns it.
    mutating func set(_ slot: Slot, to digits: UnsafeRawBufferPointer) -> Value {
        let value = UInt64(decimalDigits: digits).map(Value.number) ?? .malformed
        switch slot {
        case .first: firstValue = value
        case .second: secondValue = value
        }
        return value
    }
}
