import NIOCore

/// A NATS message's headers (ADR-4): ordered name/value pairs after a `NATS/1.0` status line,
/// names matched exactly as given.
public struct NATSHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [(name: String, value: String)] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { (name: $0.0, value: $0.1) }
    }

    public var isEmpty: Bool { fields.isEmpty }

    /// The first value of `name`.
    public subscript(name: String) -> String? {
        fields.first { $0.name == name }?.value
    }

    public mutating func append(_ name: String, _ value: String) {
        fields.append((name, value))
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        fields.makeIterator()
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.fields.elementsEqual(rhs.fields) { $0.name == $1.name && $0.value == $1.value }
    }

    /// Names are visible ASCII without `:`; values have no CR or LF. Anything else could
    /// forge another header or end the block early.
    func validate() throws(NATSError) {
        for (name, value) in fields {
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw .invalidHeader(name)
            }
            guard !value.utf8.contains(where: { $0 == 13 || $0 == 10 }) else { throw .invalidHeader(name) }
        }
    }

    /// The header block as it goes on the wire, status line and closing blank line included.
    func write(to buffer: inout ByteBuffer) {
        buffer.writeString("NATS/1.0\r\n")
        for (name, value) in fields {
            buffer.writeString(name)
            buffer.writeString(": ")
            buffer.writeString(value)
            buffer.writeString("\r\n")
        }
        buffer.writeString("\r\n")
    }

    var encodedBytes: Int {
        fields.reduce(12) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
    }

    /// Parses a header block: the headers and the status of its first line (`503` for no
    /// responders), if any.
    static func parse(_ block: ByteBuffer) throws(NATSError) -> (NATSHeaders, status: Int?, description: String?) {
        let text = String(buffer: block)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true)[...]
        guard let statusLine = lines.popFirst(), statusLine.hasPrefix("NATS/1.0") else {
            throw .protocolViolation("a header block must start with NATS/1.0")
        }
        let statusParts = statusLine.dropFirst(8).split(separator: " ", maxSplits: 1)
        let status = statusParts.first.flatMap { Int($0) }
        let description = statusParts.count > 1 ? String(statusParts[1]) : nil
        var headers = NATSHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw .protocolViolation("a header line without ':'") }
            // The one space written after the colon, no more: a value's own leading blanks are its.
            var value = line[line.index(after: colon)...]
            if value.first == " " { value = value.dropFirst() }
            headers.append(String(line[..<colon]), String(value))
        }
        return (headers, status, description)
    }
}
