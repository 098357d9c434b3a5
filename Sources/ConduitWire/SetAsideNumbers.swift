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

    /// The names as compared (none: a plain decode matches nothing).
    private let firstName: PackedName
    private let secondName: PackedName

    /// `first` and `second`: 1 to 8 bytes of UTF-8 each (a layer's constants; others trap).
    public init(_ first: String, _ second: String) {
        firstName = PackedName(first.utf8)
        secondName = PackedName(second.utf8)
    }

    /// Sets nothing aside.
    init() {
        firstName = PackedName()
        secondName = PackedName()
    }

    /// Which of the two `name` is, if either: its bytes are packed (once) only when its length
    /// is one of theirs. Inlined into the decoder's loop: most names are ruled out by length.
    /// `readable`: how many bytes can be read from the name's start (the rest of the message).
    @inline(__always)
    func slot(of name: UnsafeRawBufferPointer, readable: Int) -> Slot? {
        guard name.count == firstName.length || name.count == secondName.length else { return nil }
        let packed = PackedName.pack(name, readable: readable)
        if firstName.matches(length: name.count, packed: packed) { return .first }
        return secondName.matches(length: name.count, packed: packed) ? .second : nil
    }

    enum Slot { case first, second }

    /// Keeps `digits`, parsed, as the value of `slot`, and returns it. `readable`: how many
    /// bytes can be read from the digits' start (the rest of the message).
    mutating func set(_ slot: Slot, to digits: UnsafeRawBufferPointer, readable: Int) -> Value {
        let parsed = readable >= 8 ? UInt64(upToEightDigits: digits) ?? UInt64(decimalDigits: digits) : UInt64(decimalDigits: digits)
        let value = if let parsed { Value.number(parsed) } else { Value.malformed }
        switch slot {
        case .first: firstValue = value
        case .second: secondValue = value
        }
        return value
    }
}
