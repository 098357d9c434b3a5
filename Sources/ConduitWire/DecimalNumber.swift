extension UInt64 {
    /// A number written as decimal digits only (no sign, no spaces; leading zeros allowed), as
    /// resume's positions are (SPEC §9); nil for anything else or past uint64's largest.
    public init?(decimalDigits digits: some Collection<UInt8>) {
        guard !digits.isEmpty else { return nil }
        // Nineteen digits never overflow (10^19 - 1 < UInt64.max): their loop checks only that
        // each is a digit (a count and a check a digit were a fifth of a position's decoding).
        guard digits.count >= 20 else {
            var number: UInt64 = 0
            for byte in digits {
                let digit = byte &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                number = number &* 10 &+ UInt64(digit)
            }
            self = number
            return
        }
        var number: UInt64 = 0
        for byte in digits {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times10, overflowed) = number.multipliedReportingOverflow(by: 10)
            let (sum, carried) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflowed, !carried else { return nil }
            number = sum
        }
        self = number
    }

    /// How many decimal digits the number takes: from its bit length (a digit is log2(10) ≈
    /// 3.32 bits; 1233 / 4096 ≈ log10(2)), one comparison with a power of ten settling the
    /// guess. Inlinable: counted for every message a resuming connection sends (a loop over
    /// the powers of ten was a third of writing a position).
    @inlinable
    public var decimalDigitCount: Int {
        let bits = UInt64.bitWidth &- leadingZeroBitCount
        let guess = (bits &* 1233) &>> 12
        return self >= UInt64.powersOfTen[guess] ? guess &+ 1 : Swift.max(guess, 1)
    }

    /// 10^0 ... 10^19, every power of ten a UInt64 holds.
    @usableFromInline
    static let powersOfTen: [UInt64] = (0..<20).map { (0..<$0).reduce(1) { power, _ in power * 10 } }
}
