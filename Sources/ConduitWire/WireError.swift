/// Why a message could not be decoded or encoded.
///
/// A struct with an opaque code (not a public enum) so new codes can be added without
/// breaking callers; `code.name` is the stable spelling used by the golden vectors.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: String { // raw values are the golden vectors' spellings
            case truncated, trailingBytes = "trailing-bytes", invalidUTF8 = "invalid-utf8"
            case tooManyHeaders = "too-many-headers", keyTooLong = "key-too-long"
            case valueTooLong = "value-too-long", payloadTooLarge = "payload-too-large"
        }
        fileprivate let value: Value

        /// Input ends before the structure it promises.
        public static let truncated = Code(value: .truncated)
        /// Bytes follow the declared payload.
        public static let trailingBytes = Code(value: .trailingBytes)
        /// A key or value is not valid UTF-8.
        public static let invalidUTF8 = Code(value: .invalidUTF8)
        /// More than 255 headers.
        public static let tooManyHeaders = Code(value: .tooManyHeaders)
        /// A key longer than 255 UTF-8 bytes.
        public static let keyTooLong = Code(value: .keyTooLong)
        /// A value longer than 65,535 UTF-8 bytes.
        public static let valueTooLong = Code(value: .valueTooLong)
        /// A payload over 65,535 bytes in one message, or a chunk queue past its cap.
        public static let payloadTooLarge = Code(value: .payloadTooLarge)

        /// The name used by `framing.json` and in error messages.
        public var name: String { value.rawValue }
        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name): \(message)" }
}
