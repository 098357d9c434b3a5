import Foundation
import NIOCore
import Testing

/// The golden cases of `Fixtures/framing.json` (a byte-for-byte copy of shared/vectors/framing.json).
struct FramingVectors: Decodable {
    struct Valid: Decodable, CustomTestStringConvertible {
        let name: String
        let hex: String
        let headers: [[String]]
        let payloadHex: String
        let typed: [String: JSONValue]
        var testDescription: String { name }
    }

    struct Invalid: Decodable, CustomTestStringConvertible {
        let name: String
        let hex: String
        let error: String
        var testDescription: String { name }
    }

    struct Limits: Decodable {
        let maxHeaders: Int
        let maxKeyBytes: Int
        let maxValueBytes: Int
        let maxPayloadBytesPerMessage: Int
    }

    let valid: [Valid]
    let invalid: [Invalid]
    let limits: Limits

    static let shared: FramingVectors = {
        let url = Bundle.module.url(forResource: "framing", withExtension: "json", subdirectory: "Fixtures")!
        return try! JSONDecoder().decode(FramingVectors.self, from: Data(contentsOf: url))
    }()
}

/// A JSON scalar from the `typed` column.
enum JSONValue: Decodable, Equatable {
    case bool(Bool), null, number(Double), string(String)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let bool = try? container.decode(Bool.self) { self = .bool(bool) }
        else if let number = try? container.decode(Double.self) { self = .number(number) }
        else { self = .string(try container.decode(String.self)) }
    }
}

extension ByteBuffer {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes: bytes)
    }

    var hex: String { readableBytesView.map { String(format: "%02x", $0) }.joined() }
}
