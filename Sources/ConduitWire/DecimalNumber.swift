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

    /// `digits` as a number when they are 1 to 8 decimal digits, all eight bytes from their
    /// start read at once (the caller makes sure 8 can be read); nil otherwise, a number of
    /// more digits included (`init(decimalDigits:)` tells those). A position's digits one at a
    /// time were a third of its decoding: here the bytes past the digits are shifted out and
    /// "0"s take their place as leading zeros, all eight are checked in one step and joined in
    /// three (pairs, fours, eight).
    init?(upToEightDigits digits: UnsafeRawBufferPointer) {
        let count = digits.count
        guard count > 0, count <= 8 else { return nil }
        // Little-endian: the first digit in the lowest byte; the digits moved to the top, "0"s below.
        let unused = UInt64(8 &- count) &* 8
        let zeros: UInt64 = 0x3030_3030_3030_3030
        let loaded = UInt64(littleEndian: digits.baseAddress.unsafelyUnwrapped.loadUnaligned(as: UInt64.self))
        let bytes = (loaded &<< unused) | (zeros & ((1 &<< unused) &- 1))
        // Every byte 0x30...0x39: its top half 3, and still 3 with 6 added (0x3A and up carry).
        let high: UInt64 = 0xF0F0_F0F0_F0F0_F0F0
        guard bytes & high == zeros, (bytes &+ 0x0606_0606_0606_0606) & high == zeros else { return nil }
        var value = bytes &- zeros
        value = (value &* 10 &+ (value &>> 8)) & 0x00FF_00FF_00FF_00FF
        value = (value &* 100 &+ (value &>> 16)) & 0x0000_FFFF_0000_FFFF
        value = (value &* 10_000 &+ (value &>> 32)) & 0x0000_0000_FFFF_FFFF
        self = value
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
