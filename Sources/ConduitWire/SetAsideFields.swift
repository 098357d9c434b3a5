/// Two header fields a decoder takes off a message instead of listing them, keeping the last
/// value of each (see `Message.init(decoding:reusing:settingAside:)`).
public struct SetAsideFields: Sendable {
    public let first: String
    public let second: String
    public private(set) var firstValue: String?
    public private(set) var secondValue: String?

    /// False for none: a plain decode compares no names.
    private let isActive: Bool

    public init(_ first: String, _ second: String) {
        self.first = first
        self.second = second
        isActive = true
    }

    /// Sets nothing aside.
    init() {
        first = ""
        second = ""
        isActive = false
    }

    /// Keeps `value` when `name` is one of the two; false otherwise.
    mutating func take(_ name: String, _ value: String) -> Bool {
        guard isActive else { return false }
        if name == first {
            firstValue = value
        } else if name == second {
            secondValue = value
        } else {
            return false
        }
        return true
    }
}
