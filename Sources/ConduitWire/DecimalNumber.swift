extension UInt64 {
    /// A number written as decimal digits only (no sign, no spaces; leading zeros allowed), as
    /// resume's positions are (SPEC §9); nil for anything else or past uint64's largest.
    public init?(decimalDigits digits: some Sequence<UInt8>) {
        var number: UInt64 = 0
        var isEmpty = true
        for byte in digits {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (times10, overflowed) = number.multipliedReportingOverflow(by: 10)
            let (sum, carried) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflowed, !carried else { return nil }
            number = sum
            isEmpty = false
        }
        guard !isEmpty else { return nil }
        self = number
    }

    /// How many decimal digits the number takes (compared with powers of ten, not divided).
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
