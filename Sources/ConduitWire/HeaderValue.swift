/// The typed view of a header value (SPEC §1), as a JavaScript client exposes it.
///
/// `true`/`false`/`null`, integers matching `-?[0-9]+` within ±(2^53−1), decimals matching
/// `-?[0-9]+\.[0-9]+`; anything else stays a string, so a 64-bit id never loses digits.
public enum HeaderValue: Hashable, Sendable {
    case bool(Bool)
    case null
    case integer(Int64)
    case decimal(Double)
    case string(String)

    /// The largest integer a JavaScript number holds exactly.
    public static let maxSafeInteger: Int64 = (1 << 53) - 1

    public init(parsing text: String) {
        switch text {
        case "true": self = .bool(true)
        case "false": self = .bool(false)
        case "null": self = .null
        default: self = Self.number(text) ?? .string(text)
        }
    }

    private static func number(_ text: String) -> HeaderValue? {
        var digits = Substring(text).utf8
        if digits.first == UInt8(ascii: "-") { digits = digits.dropFirst() }
        let integerPart = digits.prefix { isDigit($0) }
        guard !integerPart.isEmpty else { return nil }
        let rest = digits[integerPart.endIndex...]
        if rest.isEmpty {
            // Only digits: past leading zeros, more than 16 cannot be within 2^53 whatever their value.
            guard integerPart.drop(while: { $0 == UInt8(ascii: "0") }).count <= 16, let value = Int64(text),
                  abs(value) <= maxSafeInteger else { return nil }
            return .integer(value)
        }
        guard rest.first == UInt8(ascii: "."), rest.count > 1,
              rest.dropFirst().allSatisfy(isDigit), let value = Double(text) else { return nil }
        return .decimal(value)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
