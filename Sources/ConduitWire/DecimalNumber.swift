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

    /// How many decimal digits the number takes (compared with powers of ten, not divided).
    /// Inlinable: counted for every message a resuming connection sends.
    @inlinable
    public var decimalDigitCount: Int {
        var count = 1
        var power: UInt64 = 10
        // 10^19 is the largest power of ten a UInt64 holds; past it the product wraps, unused.
        while count < 20, self >= power {
            count += 1
            power &*= 10
        }
        return count
    }
}
