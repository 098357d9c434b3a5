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
        /// it also replaces. The lengths are compared first, so most names cost no byte comparison.
        func replaces(_ header: String) -> Bool {
            Self.matches(header, name) || alsoReplacing.map { Self.matches(header, $0) } == true
        }

        private static func matches(_ header: String, _ name: StaticString) -> Bool {
            header.utf8.count == name.utf8CodeUnitCount
                && header.utf8.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        }

        /// Writes `number`'s `digitCount` digits at the start of `out`, two per division: a
        /// division per digit showed in the routed echo's profile with resume on.
        static func writeDigits(of number: UInt64, count digitCount: Int, into out: UnsafeMutableRawBufferPointer) {
            var rest = number
            var end = digitCount
            while rest >= 100 {
                let pair = UInt8(truncatingIfNeeded: rest % 100)
                rest /= 100
                end -= 2
                out[end] = UInt8(ascii: "0") + pair / 10
                out[end + 1] = UInt8(ascii: "0") + pair % 10
            }
            let last = UInt8(truncatingIfNeeded: rest)
            if last >= 10 {
                out[0] = UInt8(ascii: "0") + last / 10
                out[1] = UInt8(ascii: "0") + last % 10
            } else {
                out[0] = UInt8(ascii: "0") + last
            }
        }
    }
}
