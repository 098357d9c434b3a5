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
        var none = SetAsideNumbers()
        try self.init(decoding: buffer, reusing: &headers, settingAside: &none)
    }

    /// Decodes like `init(decoding:reusing:)`, except that the fields `setAside` names are not
    /// listed: their values (the last of each) go to `setAside`. A layer that takes its own
    /// fields off every message (resume's `ack` and `pos`) so keeps reusing the header list,
    /// which removing them from it afterwards would copy.
    public init(decoding buffer: ByteBuffer, reusing headers: inout Headers, settingAside setAside: inout SetAsideNumbers) throws(WireError) {
        // One pass over the raw bytes: a ByteBuffer read per field (a slice, so a retain and
        // a release each) cost more than the rest of the decoding.
        let payload = try buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(WireError) -> Range<Int> in
                var input = WireReader(bytes)
                guard let count = input.readInteger(as: UInt8.self) else {
                    throw WireError(.truncated, "the message has no header count")
                }
                headers.removeAll(reservingCapacity: Int(count))
                for index in 0..<Int(count) {
                    let name = try input.readField(lengthPrefix: UInt8.self, field: .key(index))
                    if let slot = setAside.slot(of: name, readable: name.count &+ input.remaining) {
                        let value = try input.readField(lengthPrefix: UInt16.self, field: .value(index))
                        // Not a number: still refused as any value is when it is not UTF-8.
                        if case .malformed = setAside.set(slot, to: value, readable: value.count &+ input.remaining) {
                            _ = try Self.string(value, field: .value(index))
                        }
                        continue
                    }
                    let key = try Self.string(name, field: .key(index))
                    headers.append(key, try Self.string(input.readField(lengthPrefix: UInt16.self, field: .value(index)), field: .value(index)))
                }
                guard let payloadLength = input.readInteger(as: UInt16.self) else {
                    throw WireError(.truncated, "the message ends before its payload length")
                }
                guard payloadLength <= input.remaining else {
                    throw WireError(.truncated, "the payload is declared as \(payloadLength) bytes but \(input.remaining) follow")
                }
                guard payloadLength == input.remaining else {
                    throw WireError(.trailingBytes, "\(input.remaining - Int(payloadLength)) bytes follow the declared payload")
                }
                return input.offset..<bytes.count
            }
        }.get()
        self.init(headers: headers, payload: buffer.getSlice(at: buffer.readerIndex + payload.lowerBound, length: payload.count)!)
    }

    /// The headers of a message that failed to decode, as far as they can be read: an error
    /// reply keeps the request's `route` and `token` whenever they could be read (SPEC §3).
    /// A field that is not UTF-8 still has its length, so reading goes on past it; one whose
    /// length runs past the message ends it.
    public static func readableHeaders(of buffer: ByteBuffer) -> Headers {
        buffer.withUnsafeReadableBytes { bytes in
            var input = WireReader(bytes)
            var headers = Headers()
            guard let count = input.readInteger(as: UInt8.self) else { return headers }
            for index in 0..<Int(count) {
                guard let name = try? input.readField(lengthPrefix: UInt8.self, field: .key(index)),
                      let value = try? input.readField(lengthPrefix: UInt16.self, field: .value(index))
                else { break }
                guard let name = validatedString(name), let value = validatedString(value) else { continue }
                headers.append(name, value)
            }
            return headers
        }
    }

    /// Which string is being read; described only when an error needs it, so a good message
    /// costs no formatting.
    enum Field: CustomStringConvertible {
        case key(Int)
        case value(Int)

        var description: String {
            switch self {
            case .key(let index): "key of header \(index)"
            case .value(let index): "value of header \(index)"
            }
        }
    }

    private static func string(_ bytes: UnsafeRawBufferPointer, field: Field) throws(WireError) -> String {
        guard let string = validatedString(bytes) else {
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
