public import NIOCore

extension Message {
    /// Decodes exactly one message from all readable bytes of `buffer`.
    ///
    /// The payload is a slice of `buffer` (no copy). Truncation anywhere, bytes after the
    /// declared payload and invalid UTF-8 in a key or value are typed errors, never a crash.
    public init(decoding buffer: ByteBuffer) throws(WireError) {
        var input = buffer
        guard let count = input.readInteger(as: UInt8.self) else {
            throw WireError(.truncated, "the message has no header count")
        }
        var headers = Headers(minimumCapacity: Int(count))
        for index in 0..<Int(count) {
            let name = try Self.readString(&input, lengthPrefix: UInt8.self, what: "key of header \(index)")
            let value = try Self.readString(&input, lengthPrefix: UInt16.self, what: "value of header \(index)")
            headers.append(name, value)
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

    private static func readString<Length: FixedWidthInteger>(
        _ input: inout ByteBuffer, lengthPrefix: Length.Type, what: String
    ) throws(WireError) -> String {
        guard let length = input.readInteger(as: Length.self) else {
            throw WireError(.truncated, "the message ends before the length of the \(what)")
        }
        guard let bytes = input.readSlice(length: Int(length)) else {
            throw WireError(.truncated, "the \(what) is declared as \(length) bytes but \(input.readableBytes) follow")
        }
        let string = bytes.withUnsafeReadableBytes { String(validating: $0, as: UTF8.self) }
        guard let string else { throw WireError(.invalidUTF8, "the \(what) is not valid UTF-8") }
        return string
    }
}
