/// Text a client chose (a request's token, a stream's name), equal to other text only byte for
/// byte. `String` compares by Unicode canonical equivalence: `K` and `\u{212A}` (KELVIN SIGN)
/// are equal strings, and a key of the one found the entry of the other.
public struct ExactText: Hashable, Sendable {
    public let text: String

    public init(_ text: String) { self.text = text }

    public static func == (lhs: ExactText, rhs: ExactText) -> Bool { lhs.text.utf8.elementsEqual(rhs.text.utf8) }

    public func hash(into hasher: inout Hasher) {
        for byte in text.utf8 { hasher.combine(byte) }
    }
}
