extension Message {
    /// A header written after a message's own without being added to its list: a layer's field
    /// on its way out (resume's `pos`), which would otherwise cost a copy of the list. It takes
    /// the place of any field of the same name in the list, and of `alsoReplacing`'s: the
    /// layer's fields are the layer's to give. Its value is a number, written as decimal digits
    /// straight into the encoding: no string is made for it.
    public struct AppendedField: Sendable {
        public let name: String
        public let number: UInt64
        /// Another name the layer owns (resume's `ack` beside `pos`): the list's fields of that
        /// name are left out too.
        public let alsoReplacing: String?
        /// The length of the number's decimal digits: counted once, for the size and the write.
        let digitCount: Int

        public init(_ name: String, _ number: UInt64, alsoReplacing: String? = nil) {
            self.name = name
            self.number = number
            self.alsoReplacing = alsoReplacing
            digitCount = number.decimalDigitCount
        }

        /// Writes the digits at the start of `out`, two per division: a division per digit
        /// showed in the routed echo's profile with resume on.
        func writeDigits(into out: UnsafeMutableRawBufferPointer) {
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
