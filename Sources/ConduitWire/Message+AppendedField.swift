extension Message {
    /// A header written after a message's own without being added to its list: a layer's field
    /// on its way out (resume's `pos`, and `ack` when one is due), which would otherwise cost a
    /// copy of the list. It takes the place of any field of the same name in the list, and of
    /// `alsoReplacing`'s: the layer's fields are the layer's to give. Its value is a number.
    ///
    /// Plain values, small enough to be copied without a call (made and dropped for every
    /// message a resuming connection sends): the names (a layer's constants, at most 8 bytes)
    /// packed in integers, and the first field as it is encoded (key length, key, value length,
    /// digits), which the encoder copies and a layer that numbers message after message
    /// `increment`s: the digits written again for each message, and counted first, were a fifth
    /// of what resume added to the routed echo. `alsoNumber` (rare: an acknowledgement) is
    /// written when the message is.
    public struct AppendedField: Sendable {
        public private(set) var number: UInt64
        public let alsoNumber: UInt64?
        /// The names the field takes the place of: its own, and `alsoReplacing`.
        let names: FieldNames
        /// The first field as encoded, `firstBytes` bytes of it.
        private var first = EncodedField()
        private var firstBytes: UInt8

        /// `name` and `alsoReplacing`: 1 to `PackedName.maxBytes` bytes of UTF-8 each (a layer's
        /// constants; others trap).
        public init(_ name: StaticString, _ number: UInt64, alsoReplacing: StaticString? = nil, alsoNumber: UInt64? = nil) {
            // The layer's constants: a mistake shows in its tests.
            precondition(alsoNumber == nil || alsoReplacing != nil, "a second number needs the name it is appended under")
            self.number = number
            self.alsoNumber = alsoNumber
            names = FieldNames(name, alsoReplacing)
            let digits = number.decimalDigitCount
            firstBytes = UInt8(truncatingIfNeeded: 3 + names.first.length + digits)
            let names = names
            withUnsafeMutableBytes(of: &first) { bytes in
                let afterName = names.first.write(into: bytes.baseAddress.unsafelyUnwrapped)
                bytes.storeBytes(of: UInt16(truncatingIfNeeded: digits).bigEndian, toByteOffset: afterName, as: UInt16.self)
                Self.writeDigits(of: number, count: digits, into: UnsafeMutableRawBufferPointer(rebasing: bytes[(afterName + 2)...]))
            }
        }

        /// The fields appended: one, or two with `alsoNumber`.
        var count: Int { alsoNumber == nil ? 1 : 2 }

        /// The bytes `write(into:)` writes.
        @inline(__always)
        var encodedBytes: Int {
            guard let alsoNumber else { return Int(firstBytes) }
            return Int(firstBytes) + 3 + names.second.length + alsoNumber.decimalDigitCount
        }

        /// The same field with its number one more, its digits counted up in place (nearly
        /// always the last one only). A field with `alsoNumber` is made anew instead.
        public mutating func increment() {
            precondition(alsoNumber == nil, "only a field of one number counts up")
            number += 1
            let start = 3 + names.first.length
            let end = Int(firstBytes)
            let grew = withUnsafeMutableBytes(of: &first) { bytes -> Bool in
                var index = end &- 1
                while index >= start, bytes[index] == UInt8(ascii: "9") {
                    bytes[index] = UInt8(ascii: "0")
                    index &-= 1
                }
                guard index < start else {
                    bytes[index] &+= 1
                    return false
                }
                // All nines: one digit more, a 1 and zeros (20 at most: `number` traps first).
                bytes[start] = UInt8(ascii: "1")
                bytes[end] = UInt8(ascii: "0")
                bytes.storeBytes(of: UInt16(truncatingIfNeeded: end &+ 1 &- start).bigEndian, toByteOffset: start &- 2, as: UInt16.self)
                return true
            }
            if grew { firstBytes &+= 1 }
        }

        /// Writes the fields at the start of `out`, which has room for `encodedBytes`; returns
        /// that count. Where `out` has room for all of `first`, it is stored whole, four words
        /// (what follows is written over next): a copy of a dozen bytes was a call.
        func write(into out: UnsafeMutableRawBufferPointer) -> Int {
            let firstBytes = Int(firstBytes)
            let at = out.baseAddress.unsafelyUnwrapped
            if out.count >= MemoryLayout<EncodedField>.size {
                at.storeBytes(of: first, as: EncodedField.self)
            } else {
                withUnsafeBytes(of: first) { at.copyMemory(from: $0.baseAddress.unsafelyUnwrapped, byteCount: firstBytes) }
            }
            guard let alsoNumber else { return firstBytes }
            let digits = alsoNumber.decimalDigitCount
            let afterName = firstBytes + names.second.write(into: at + firstBytes)
            at.storeBytes(of: UInt16(truncatingIfNeeded: digits).bigEndian, toByteOffset: afterName, as: UInt16.self)
            Self.writeDigits(of: alsoNumber, count: digits, into: UnsafeMutableRawBufferPointer(start: at + afterName + 2, count: digits))
            return afterName + 2 + digits
        }

        /// Writes `number`'s `digitCount` digits at the start of `out`, two at a time from a
        /// table: a division per digit, and then two per pair, showed in the routed echo's
        /// profile with resume on.
        static func writeDigits(of number: UInt64, count digitCount: Int, into out: UnsafeMutableRawBufferPointer) {
            let pairs = digitPairs.utf8Start
            var rest = number
            var end = digitCount
            while rest >= 100 {
                let pair = Int(truncatingIfNeeded: rest % 100) &* 2
                rest /= 100
                end -= 2
                out[end] = pairs[pair]
                out[end + 1] = pairs[pair + 1]
            }
            if rest >= 10 {
                let pair = Int(truncatingIfNeeded: rest) &* 2
                out[0] = pairs[pair]
                out[1] = pairs[pair + 1]
            } else {
                out[0] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest)
            }
        }

        /// "00" to "99", each number's two digits at twice its offset.
        private static let digitPairs: StaticString = """
            00010203040506070809101112131415161718192021222324252627282930313233343536373839\
            40414243444546474849505152535455565758596061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899
            """
    }

    /// Room for one field of a name of at most 8 bytes and a number of at most 20 digits.
    private struct EncodedField {
        var bytes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    }

    /// The names of an appended field: a header of the list is compared with them only when
    /// its length is one of theirs.
    struct FieldNames: Sendable {
        let first: PackedName
        let second: PackedName

        init(_ first: StaticString, _ second: StaticString?) {
            self.first = PackedName(first)
            self.second = second.map(PackedName.init) ?? PackedName()
        }

        /// Whether `header` is one of the names. Inlined into the encoder's loop over the
        /// headers: most are ruled out by their length alone.
        @inline(__always)
        func contain(_ header: String) -> Bool {
            let count = header.utf8.count
            guard count == first.length || count == second.length else { return false }
            var header = header
            let packed = header.withUTF8 { PackedName.pack($0) }
            return first.matches(length: count, packed: packed) || second.matches(length: count, packed: packed)
        }
    }
}
