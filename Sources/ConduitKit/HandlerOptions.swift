/// A handler's options as a plain Swift struct: the defaults it declares hold for every key
/// the YAML leaves out, a key it doesn't declare is an error (with its line and column), and
/// `validate` checks ranges and combinations after decoding. No hand-written `init(from:)`.
///
/// ```swift
/// public struct Options: HandlerOptions {
///     public var step = 1
///     public var label: String?
///     public init() {}
///     public func validate() throws(InvalidOption) {
///         guard step > 0 else { throw InvalidOption("step", "must be above 0") }
///     }
/// }
/// ```
///
/// A property whose type is itself `HandlerOptions` is a nested section, checked the same way.
public protocol HandlerOptions: Codable, Sendable {
    /// Every option at its default.
    init()
    /// Throws when a value is out of range or values don't go together.
    func validate() throws(InvalidOption)
}

extension HandlerOptions {
    public func validate() throws(InvalidOption) {}
}

/// An option whose value can't be used: which one, and why, as the error names them.
public struct InvalidOption: Error, Sendable, Equatable, CustomStringConvertible {
    /// The option's key, as written in YAML.
    public let option: String
    /// What is wrong, as a sentence fragment: "must be 1…65507".
    public let reason: String

    public init(_ option: String, _ reason: String) {
        self.option = option
        self.reason = reason
    }

    public var description: String { "'\(option)' \(reason)" }

    /// Checks a duration in seconds: from a millisecond, as the host's own settings (1e-10
    /// passed "above 0" and was a timer of 0 ns, which timed out everything at once), to
    /// `maximum` (past which a conversion to a duration can trap).
    public static func checkSeconds(_ option: String, _ value: Double, maximum: Int) throws(InvalidOption) {
        guard value >= 0.001, value <= Double(maximum) else {
            throw InvalidOption(option, "must be at least 0.001 (a millisecond) and at most \(maximum)")
        }
    }
}

/// An option that is one of a few words (`backend: builtin`). A word that is none of them is
/// refused naming those that are: Swift's own decoding said "Cannot initialize Backend from
/// invalid String value gpt".
public protocol OptionChoice: RawRepresentable, CaseIterable, Decodable where RawValue == String {}

extension OptionChoice {
    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        let word = try value.decode(String.self)
        guard let choice = Self(rawValue: word) else {
            let choices = Self.allCases.map(\.rawValue).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(in: value, debugDescription: "'\(word)' is not one of \(choices)")
        }
        self = choice
    }
}
