/// A configuration that can't be used: where, and a sentence saying what is wrong.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let location: SourceLocation
    public let message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// `file:line:column: error: message`, the form editors and compilers use.
    public var description: String { "\(location): error: \(message)" }
}
