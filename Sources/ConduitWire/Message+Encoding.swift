public import NIOCore

extension Message {
    /// The number of bytes `encode(into:)` writes.
    public var encodedSize: Int {
        headers.reduce(3) { $0 + 3 + $1.name.utf8.count + $1.value.utf8.count } + payload.readableBytes
    }

    /// Checks every limit of SPEC §1; an encoder refuses input over a limit, never truncates.
    public func validateLimits() throws(WireError) {
        _ = try validatedEncodedSize()
    }

    /// `encodedSize`, after checking every limit of SPEC §1, in one pass over the headers.
    /// `field`: one more header after the others (see `encode(into:validatedSize:appending:)`).
    public func validatedEncodedSize(appending field: AppendedField? = nil) throws(WireError) -> Int {
        let headerBytes = try validatedHeaderBytes(appending: field)
        guard payload.readableBytes <= WireLimits.maxPayloadBytes else {
            throw WireError(.payloadTooLarge, "payload of \(payload.readableBytes) bytes; at most \(WireLimits.maxPayloadBytes) in one message (split it)")
        }
        return headerBytes + 3 + payload.readableBytes
    }

    /// Fields a layer adds to a message on its way out, which must fit beside its own headers.
    public struct AddedFields: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// Resume's `pos` (SPEC §9).
        public static let position = AddedFields(rawValue: 1)
        /// `more`, on the parts of a payload split (SPEC §2).
        public static let more = AddedFields(rawValue: 2)

        var count: Int { rawValue.nonzeroBitCount }

        /// The fields' names, for an error: a sender whose message breaks the limit only with
        /// them is told which they are (the limit it sees is SPEC §1's 255).
        var names: String {
            [(Self.position, ResumeHeader.position), (Self.more, HeaderName.more)]
                .filter { contains($0.0) }.map { "'\($0.1)'" }.joined(separator: " and ")
        }
    }

    /// Checks the header limits only: a message whose payload is too large can still be sent
    /// as parts (`split`), but headers that don't fit can't. `added`: fields a layer will add
    /// on the way out, which must fit too.
    public func validateHeaderLimits(leavingRoomFor added: AddedFields = []) throws(WireError) {
        _ = try validatedHeaderBytes(appending: nil, leavingRoomFor: added)
    }

    /// Checks the header limits of a message about to be sent, with room for what its way out
    /// adds: `more` on the parts of a payload too large for one message (`split`), and `pos`
    /// when it is `numbered` (SPEC §9).
    public func validateHeaderLimitsForSending(numbered: Bool) throws(WireError) {
        var added: AddedFields = numbered ? .position : []
        if payload.readableBytes > WireLimits.maxPayloadBytes { added.insert(.more) }
        try validateHeaderLimits(leavingRoomFor: added)
    }

    /// The encoded size of the headers (length prefixes included), after checking their limits.
    private func validatedHeaderBytes(appending field: AppendedField?, leavingRoomFor added: AddedFields = []) throws(WireError) -> Int {
        var total = 0
        var count = 0
        func add(_ name: String, valueBytes: Int) throws(WireError) {
            let keyBytes = name.utf8.count
            guard keyBytes <= WireLimits.maxKeyBytes else {
                throw WireError(.keyTooLong, "header key of \(keyBytes) bytes; at most \(WireLimits.maxKeyBytes)")
            }
            guard valueBytes <= WireLimits.maxValueBytes else {
                throw WireError(.valueTooLong, "value of header '\(name)' is \(valueBytes) bytes; at most \(WireLimits.maxValueBytes)")
            }
            total += 3 + keyBytes + valueBytes
            count += 1
        }
        // Without a field that may replace some, the count is known before the limits of each.
        if field == nil, headers.count + added.count > WireLimits.maxHeaders {
            throw Self.tooManyHeaders(headers.count, beside: added)
        }
        // The names taken once: the field itself is too large to be copied for each header.
        let replaced = field?.names
        for (name, value) in headers where replaced?.contain(name) != true { try add(name, valueBytes: value.utf8.count) }
        if let field {
            // Names of at most 8 bytes (checked when made), values of at most 20 digits.
            total += field.encodedBytes
            count += field.count
        }
        guard count + added.count <= WireLimits.maxHeaders else {
            throw Self.tooManyHeaders(count, beside: added)
        }
        return total
    }

    private static func tooManyHeaders(_ count: Int, beside added: AddedFields) -> WireError {
        guard !added.isEmpty else {
            return WireError(.tooManyHeaders, "\(count) headers; at most \(WireLimits.maxHeaders) fit in one message")
        }
        let fit = WireLimits.maxHeaders - added.count
        return WireError(.tooManyHeaders, "\(count) headers; at most \(fit) fit in one message beside the \(added.names) added on its way out")
    }

    /// Appends the encoded message to `buffer`. Nothing is written when a limit is exceeded.
    public func encode(into buffer: inout ByteBuffer) throws(WireError) {
        encode(into: &buffer, validatedSize: try validatedEncodedSize())
    }

    /// Appends the encoded message (with `field` after its headers), checked already by
    /// `validatedEncodedSize(appending:)`, whose result is `size` (a framing layer needs the
    /// size first for its own header).
    public func encode(into buffer: inout ByteBuffer, validatedSize size: Int, appending field: AppendedField? = nil) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { encode(into: $0, appending: field) }
    }

    /// Writes the encoded message (with `field`) at the start of `out`, for a message checked by
    /// `validatedEncodedSize(appending:)`, whose result `out` has room for; returns the bytes
    /// written. For a framing layer that writes its own header in the same raw write: each
    /// ByteBuffer write re-checks capacity and uniqueness and pays a dynamic exclusivity check,
    /// a third of a 64-byte frame's encoding. Within the package only: memory too small for the
    /// message is not checked for, and `out` past the bytes written is scratch (an appended
    /// field is stored a word at a time where `out` has room).
    package func encode(into out: UnsafeMutableRawBufferPointer, appending field: AppendedField? = nil) -> Int {
        let prefix = writePrefix(into: out, appending: field)
        payload.withUnsafeReadableBytes { UnsafeMutableRawBufferPointer(rebasing: out[prefix...]).copyMemory(from: $0) }
        return prefix + payload.readableBytes
    }

    /// Appends everything but the payload (header count, headers, payload length): with the
    /// payload written after it as a separate buffer, the two make the message, so a sender
    /// can gather-write a large payload without copying it.
    public func encodePrefix(into buffer: inout ByteBuffer) throws(WireError) {
        let size = try validatedEncodedSize()
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size - payload.readableBytes) { encodePrefix(into: $0) }
    }

    /// As `encodePrefix(into:)` (with `field`), into raw memory, for a message checked by
    /// `validatedEncodedSize(appending:)`, whose result less the payload `out` has room for;
    /// returns the bytes written (`out` past them is scratch, as for `encode(into:appending:)`).
    package func encodePrefix(into out: UnsafeMutableRawBufferPointer, appending field: AppendedField? = nil) -> Int {
        writePrefix(into: out, appending: field)
    }

    /// Writes the header count, the headers and the payload length at the start of `out`, whose
    /// room the caller checked; returns the bytes written. One capacity check for all of it, then
    /// raw stores: separate ByteBuffer writes per field showed in the routed echo's profile.
    private func writePrefix(into out: UnsafeMutableRawBufferPointer, appending field: AppendedField?) -> Int {
        // The count is known once the replaced fields are skipped: written last, in its place.
        var writer = PrefixWriter(out: out, offset: 1)
        var count: UInt8 = 0
        let replaced = field?.names
        for (name, value) in headers where replaced?.contain(name) != true {
            writer.put(field: name, value)
            count += 1
        }
        if let field {
            writer.offset &+= field.write(into: UnsafeMutableRawBufferPointer(rebasing: out[writer.offset...]))
            count &+= UInt8(truncatingIfNeeded: field.count)
        }
        out.storeBytes(of: count, toByteOffset: 0, as: UInt8.self)
        writer.put(UInt16(payload.readableBytes))
        return writer.offset
    }

    /// Raw stores into memory whose size was checked before. A struct, not local functions:
    /// closures that captured the offset paid a dynamic exclusivity check on every access
    /// (a tenth of a 64-byte message's encoding in a profile). Its arithmetic wraps: sizes were
    /// checked against the limits (a few hundred KiB at most) before anything is written, so the
    /// overflow checks of `+` could never fail.
    private struct PrefixWriter {
        let out: UnsafeMutableRawBufferPointer
        var offset: Int

        mutating func put<Integer: FixedWidthInteger>(_ value: Integer) {
            out.storeBytes(of: value.bigEndian, toByteOffset: offset, as: Integer.self)
            offset &+= MemoryLayout<Integer>.size
        }

        mutating func put(_ string: String) {
            var string = string
            let start = offset
            let count = string.withUTF8 { utf8 in
                UnsafeMutableRawBufferPointer(rebasing: out[start...]).copyMemory(from: UnsafeRawBufferPointer(utf8))
                return utf8.count
            }
            offset &+= count
        }

        mutating func put(field name: String, _ value: String) {
            put(UInt8(name.utf8.count))
            put(name)
            put(UInt16(value.utf8.count))
            put(value)
        }
    }

    /// The encoded message in a new buffer.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(WireError) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: encodedSize)
        try encode(into: &buffer)
        return buffer
    }
}

