extension Message {
    /// A header written after a message's own without being added to its list: a layer's field
    /// on its way out (resume's `pos`, and `ack` when one is due), which would otherwise cost a
    /// copy of the list. It takes the place of any field of the same name in the list, and of
    /// `alsoReplacing`'s: the layer's fields are the layer's to give. Its value is a number,
    /// written as decimal digits straight into the encoding: no string is made for it. The
    /// names are the layer's constants (`StaticString`), so the field is plain values: made and
    /// dropped for every message a resuming connection sends, with `String` names it cost
    /// reference counting and outlined copies and destroys by value witness.
    public struct AppendedField: Sendable {
        public let name: StaticString
        public let number: UInt64
        /// Another name the layer owns (resume's `ack` beside `pos`): the list's fields of that
        /// name are left out too; with `alsoNumber`, it is appended after this one, with that value.
        public let alsoReplacing: StaticString?
        public let alsoNumber: UInt64?
        /// The lengths of the numbers' decimal digits: counted once, for the size and the write.
        @usableFromInline let digitCount: Int
        @usableFromInline let alsoDigitCount: Int

        /// `name` and `alsoReplacing`: at most `WireLimits.maxKeyBytes` bytes of UTF-8 each.
        /// Inlinable: made for every message a resuming connection sends, a call into this
        /// module cost as much as the work.
        @inlinable
        public init(_ name: StaticString, _ number: UInt64, alsoReplacing: StaticString? = nil, alsoNumber: UInt64? = nil) {
            // The layer's constants: a mistake shows in its tests (and a name over 255 bytes
            // would trap at its length byte anyway).
            assert(alsoNumber == nil || alsoReplacing != nil, "a second number needs the name it is appended under")
            assert(
                name.utf8CodeUnitCount <= WireLimits.maxKeyBytes && (alsoReplacing?.utf8CodeUnitCount ?? 0) <= WireLimits.maxKeyBytes,
                "a layer's field name has at most \(WireLimits.maxKeyBytes) bytes")
            self.name = name
            self.number = number
            self.alsoReplacing = alsoReplacing
            self.alsoNumber = alsoNumber
            digitCount = number.decimalDigitCount
            alsoDigitCount = alsoNumber?.decimalDigitCount ?? 0
        }

        /// The fields appended: one, or two with `alsoNumber` (and its name).
        var count: Int { alsoNumber != nil && alsoReplacing != nil ? 2 : 1 }

        /// Whether a header of the list gives way to the field: its name is this one's or the one
        /// it also replaces. The name's length is taken once and compared first, so most names
        /// cost no byte comparison.
        func replaces(_ header: String) -> Bool {
            let count = header.utf8.count
            if count == name.utf8CodeUnitCount, Self.matches(header, name) { return true }
            guard let other = alsoReplacing, count == other.utf8CodeUnitCount else { return false }
            return Self.matches(header, other)
        }

        /// `header`, of `name`'s length, has its bytes.
        private static func matches(_ header: String, _ name: StaticString) -> Bool {
            header.utf8.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
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
}
