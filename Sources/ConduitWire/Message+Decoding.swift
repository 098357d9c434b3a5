public import NIOCore

extension Message {
    /// Decodes exactly one message from all readable bytes of `buffer`.
    ///
    /// The payload is a slice of `buffer` (no copy). Truncation anywhere, bytes after the
    /// declared payload and invalid UTF-8 in a key or value are typed errors, never a crash.
    public init(decoding buffer: ByteBuffer) throws(WireError) {
        var headers = Headers()
        try self.init(decoding: buffer, reusing: &headers)
    }

    /// Decodes like `init(decoding:)`, filling `headers` and using it as the message's headers.
    /// A reader that decodes message after message into the same variable allocates no header
    /// list once the previous message is gone (it is copied only while one still holds it).
    public init(decoding buffer: ByteBuffer, reusing headers: inout Headers) throws(WireError) {
        var none = SetAsideFields()
        try self.init(decoding: buffer, reusing: &headers, settingAside: &none)
    }

    /// Decodes like `init(decoding:reusing:)`, except that the fields `setAside` names are not
    /// listed: their values (the last of each) go to `setAside`. A layer that takes its own
    /// fields off every message (resume's `ack` and `pos`) so keeps reusing the header list,
    /// which removing them from it afterwards would copy.
    public init(decoding buffer: ByteBuffer, reusing headers: inout Headers, settingAside setAside: inout SetAsideFields) throws(WireError) {
        var input = buffer
        guard let count = input.readInteger(as: UInt8.self) else {
            throw WireError(.truncated, "the message has no header count")
        }
        headers.removeAll(reservingCapacity: Int(count))
        for index in 0..<Int(count) {
            let name = try Self.readString(&input, lengthPrefix: UInt8.self, field: .key(index))
            let value = try Self.readString(&input, lengthPrefix: UInt16.self, field: .value(index))
            if !setAside.take(name, value) { headers.append(name, value) }
        }
        guard let payloadLength = input.readInteger(as: UInt16.self) else {
            throw WireError(.truncated, "the message ends before its payload length")
        }
        guard let payload = input.readSlice(length: Int(payloadLength)) else {
            throw WireError(.truncated, "the payload is declared as \(payloadLength) bytes but \(input.readableBytes) follow")
        }
        guard input.readableBytes == 0 else {
            throw WireError(.trailingBytes, "\(input.readableBytes) bytes follow the declared payload")
        }
        self.init(headers: headers, payload: payload)
    }

    /// The headers of a message that failed to decode, as far as they can be read (every one
    /// before the first broken field): an error reply keeps the request's `route` and `token`
    /// whenever they could be read (SPEC §3).
    public static func readableHeaders(of buffer: ByteBuffer) -> Headers {
        var input = buffer
        var headers = Headers()
        guard let count = input.readInteger(as: UInt8.self) else { return headers }
        for index in 0..<Int(count) {
            guard let name = try? readString(&input, lengthPrefix: UInt8.self, field: .key(index)),
                  let value = try? readString(&input, lengthPrefix: UInt16.self, field: .value(index))
            else { break }
            headers.append(name, value)
        }
        return headers
    }

    /// Which string is being read; described only when an error needs it, so a good message
    /// costs no formatting.
    private enum Field: CustomStringConvertible {
        case key(Int)
        case value(Int)

        var description: String {
            switch self {
            case .key(let index): "key of header \(index)"
            case .value(let index): "value of header \(index)"
            }
        }
    }

    private static func readString<Length: FixedWidthInteger>(
        _ input: inout ByteBuffer, lengthPrefix: Length.Type, field: Field
    ) throws(WireError) -> String {
        guard let length = input.readInteger(as: Length.self) else {
            throw WireError(.truncated, "the message ends before the length of the \(field)")
        }
        guard let bytes = input.readSlice(length: Int(length)) else {
            throw WireError(.truncated, "the \(field) is declared as \(length) bytes but \(input.readableBytes) follow")
        }
        guard let string = bytes.withUnsafeReadableBytes(Self.validatedString) else {
            throw WireError(.invalidUTF8, "the \(field) is not valid UTF-8")
        }
        return string
    }

    /// Header keys and values are nearly always ASCII, which needs no validation beyond the
    /// check itself; `String(validating:)` is generic and resolves type metadata at run time on
    /// every call (7 % of the routed 64-byte echo's CPU in a perf profile), so it is kept for the rest.
    private static func validatedString(_ raw: UnsafeRawBufferPointer) -> String? {
        let bytes = raw.assumingMemoryBound(to: UInt8.self)
        if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }
}
