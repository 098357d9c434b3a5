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
}
