/// One value in a handler's diagnostics (JSON number, string or boolean): written by the
/// host, read by the clients' diagnostics.
public enum DiagnosticValue: Sendable, Equatable, Codable {
    case number(Int)
    case text(String)
    case flag(Bool)

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let value): try container.encode(value)
        case .text(let value): try container.encode(value)
        case .flag(let value): try container.encode(value)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) {
            self = .number(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .flag(value)
        } else {
            self = .text(try container.decode(String.self))
        }
    }
}
