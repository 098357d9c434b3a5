import NIOCore

/// An incremental parser for a `text/event-stream` body (the parts of the WHATWG format an
/// OpenAI-compatible stream uses): lines end in LF or CRLF, `data:` lines of one event are
/// joined with LF, a blank line dispatches the event, `:` comments and other fields
/// (`event`, `id`, `retry`) are skipped. Chunks may split lines anywhere.
struct ServerSentEvents {
    /// The longest line, and the longest data of one event, kept while waiting for its end;
    /// longer is a malformed stream (`data:` lines without the blank line that ends an event
    /// were once joined without end).
    static let maxBytes = 1 << 20

    private var partialLine: [UInt8] = []
    private var data: [UInt8]?

    /// A line or an event's data over `maxBytes`.
    struct TooLong: Error {
        let what: String
    }

    /// Feeds the next chunk of the body; returns the `data` of every event it completed.
    mutating func feed(_ chunk: ByteBuffer) throws(TooLong) -> [String] {
        var events: [String] = []
        for byte in chunk.readableBytesView {
            guard byte == UInt8(ascii: "\n") else {
                partialLine.append(byte)
                guard partialLine.count <= Self.maxBytes else { throw TooLong(what: "a line") }
                continue
            }
            if partialLine.last == UInt8(ascii: "\r") { partialLine.removeLast() }
            if let event = try take(line: partialLine) { events.append(event) }
            partialLine.removeAll(keepingCapacity: true)
        }
        return events
    }

    /// Handles one complete line; returns an event's data when the line is blank.
    private mutating func take(line: [UInt8]) throws(TooLong) -> String? {
        guard !line.isEmpty else {
            defer { data = nil }
            return data.map { String(decoding: $0, as: UTF8.self) }
        }
        let field = line.prefix { $0 != UInt8(ascii: ":") }
        guard field.elementsEqual("data".utf8) else { return nil }
        var value = line.dropFirst(field.count + 1)
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        if data == nil {
            data = Array(value)
        } else {
            guard data!.count + 1 + value.count <= Self.maxBytes else { throw TooLong(what: "an event's data") }
            data!.append(UInt8(ascii: "\n"))
            data!.append(contentsOf: value)
        }
        return nil
    }
}
