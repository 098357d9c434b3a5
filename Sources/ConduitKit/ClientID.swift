/// A client id or top-window id from the connection path (SPEC §2): a decimal uint64 (the
/// runtime's form) or a token of `NameAlphabet` (`[A-Za-z0-9._-]`), 1–64 characters. Digits
/// are part of the alphabet, so every decimal uint64 (≤ 20 digits) is covered.
public struct ClientID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// Nil when `rawValue` is not a valid id.
    public init?(_ rawValue: some StringProtocol) {
        let utf8 = rawValue.utf8
        guard (1...64).contains(utf8.count), utf8.allSatisfy(NameAlphabet.contains) else { return nil }
        self.rawValue = String(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: ClientID, rhs: ClientID) -> Bool { lhs.rawValue < rhs.rawValue }
}
