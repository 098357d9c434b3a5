extension Message {
    /// A header written after a message's own without being added to its list: a layer's field
    /// on its way out (resume's `pos`, and `ack` when one is due), which would otherwise cost a
    /// copy of the list. It takes the place of any field of the same name in the list, and of
    /// `alsoReplacing`'s: the layer's fields are the layer's to give. Its value is a number,
    /// written as decimal digits straight into the encoding: no string is made for it.
    public struct AppendedField: Sendable {
        public let name: String
        public let number: UInt64
        /// Another name the layer owns (resume's `ack` beside `pos`): the list's fields of that
        /// name are left out too; with `alsoNumber`, it is appended after this one, with that value.
        public let alsoReplacing: String?
        public let alsoNumber: UInt64?
        /// The lengths of the numbers' decimal digits: counted once, for the size and the write.
        let digitCount: Int
        let alsoDigitCount: Int

        public init(_ name: String, _ number: UInt64, alsoReplacing: String? = nil, alsoNumber: UInt64? = nil) {
            precondition(alsoNumber == nil || alsoReplacing != nil, "a second number needs the name it is appended under")
            self.name = name
            self.number = number
            self.alsoReplacing = alsoReplacing
            self.alsoNumber = alsoNumber
            digitCount = number.decimalDigitCount
            alsoDigitCount = alsoNumber?.decimalDigitCount ?? 0
        }

        /// The fields appended: one, or two with `alsoNumber`.
        var count: Int { alsoNumber == nil ? 1 : 2 }

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
