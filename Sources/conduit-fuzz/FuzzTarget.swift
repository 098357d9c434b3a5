import ConduitWire
import NIOCore

/// One fuzz input through the decoder and the chunk reassembler. A property that does not
/// hold traps, which libFuzzer reports as a crash with the input that caused it.
///
/// - Decoding any bytes either throws a `WireError` or yields a message that re-encodes to
///   exactly those bytes (the codec is a bijection on valid input).
/// - Setting `ack` and `pos` aside (resume) decodes the same bytes to the same message less
///   those fields, each value parsed as exactly a decimal uint64 or else malformed; appending
///   `pos` as a number encodes the message with its own `pos` fields replaced.
/// - A decoded message split into parts and joined again by a `ChunkAssembler` gives back its
///   payload; an assembler with a cap refuses exactly when the queued bytes pass it.
/// - A message that passes the check for sending (room for `more` on its parts and, numbered,
///   for `pos`) encodes in every part, `pos` appended when numbered: the host accepts pushes
///   and replies by that check and writes them later.
enum FuzzTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        let input = ByteBuffer(bytes: bytes)
        let decoded = Result { () throws(WireError) in try Message(decoding: input) }
        setAside(decoded, original: input)
        guard case .success(let message) = decoded else { return }
        roundTrip(message, original: input)
        appendPosition(to: message, number: UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15)
        reassemble(message, partSize: Int(bytes.first ?? 1) % 7 + 1)
        for numbered in [false, true] {
            checkedForSending(message, numbered: numbered)
            // The same headers with a payload that must be split.
            var large = message
            large.payload = largePayload
            checkedForSending(large, numbered: numbered)
        }
    }

    /// One byte over a message's payload limit, shared by every input.
    private static let largePayload = ByteBuffer(repeating: 7, count: WireLimits.maxPayloadBytes + 1)

    private static func checkedForSending(_ message: Message, numbered: Bool) {
        guard (try? message.validateHeaderLimitsForSending(numbered: numbered)) != nil else { return }
        let position = numbered ? Message.AppendedField(ResumeHeader.positionField, UInt64.max) : nil
        for part in message.split() {
            precondition((try? part.validatedEncodedSize(appending: position)) != nil, "a part of a message checked for sending does not encode")
        }
    }

    private static func roundTrip(_ message: Message, original: ByteBuffer) {
        precondition(message.encodedSize == original.readableBytes, "encodedSize disagrees with the decoded length")
        let encoded = try! message.encoded()
        precondition(encoded == original, "re-encoding a decoded message changed its bytes")
    }

    private static func setAside(_ plain: Result<Message, WireError>, original: ByteBuffer) {
        var fields = SetAsideNumbers(ResumeHeader.ack, ResumeHeader.position)
        var headers = Headers()
        let decoded = Result { () throws(WireError) in try Message(decoding: original, reusing: &headers, settingAside: &fields) }
        switch (plain, decoded) {
        case (.failure(let expected), .failure(let error)):
            precondition(error.code == expected.code, "setting fields aside changed the error: \(error) instead of \(expected)")
        case (.failure, .success):
            preconditionFailure("a message that fails to decode decodes with fields set aside")
        case (.success, .failure):
            preconditionFailure("a message that decodes fails to decode with fields set aside")
        case (.success(let message), .success(let decoded)):
            let kept = message.headers.filter { $0.name != ResumeHeader.ack && $0.name != ResumeHeader.position }
            precondition(decoded.headers == Headers(kept.map { ($0.name, $0.value) }), "setting fields aside changed the other headers")
            precondition(decoded.payload == message.payload, "setting fields aside changed the payload")
            precondition(fields.firstValue == expected(message.headers[ResumeHeader.ack]), "the set-aside ack differs from its text")
            precondition(fields.secondValue == expected(message.headers[ResumeHeader.position]), "the set-aside pos differs from its text")
        }
    }

    /// What a set-aside field's text must give: digits only, within uint64.
    private static func expected(_ text: String?) -> SetAsideNumbers.Value {
        guard let text else { return .absent }
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let number = UInt64(text) else { return .malformed }
        return .number(number)
    }

    /// Numbers `message` as the host does: `pos`, with `ack` for odd numbers; both take the
    /// place of the message's own.
    private static func appendPosition(to message: Message, number: UInt64) {
        let ack = number % 2 == 1 ? number / 3 : nil
        let field = Message.AppendedField(ResumeHeader.positionField, number, alsoReplacing: ResumeHeader.ackField, alsoNumber: ack)
        guard let size = try? message.validatedEncodedSize(appending: field) else { return }
        var encoded = ByteBuffer()
        message.encode(into: &encoded, validatedSize: size, appending: field)
        precondition(encoded.readableBytes == size, "the appended fields' size disagrees with their encoding")
        let own = message.headers.filter { $0.name != ResumeHeader.position && $0.name != ResumeHeader.ack }.map { ($0.name, $0.value) }
        let expected = own + [(ResumeHeader.position, "\(number)")] + (ack.map { [(ResumeHeader.ack, "\($0)")] } ?? [])
        precondition((try? Message(decoding: encoded)) == Message(headers: Headers(expected), payload: message.payload), "the appended pos and ack did not replace the message's own")
    }

    private static func reassemble(_ message: Message, partSize: Int) {
        guard message.payload.readableBytes > 0 else { return }
        let parts = message.split(maxPayloadBytes: partSize)
        let limit = message.payload.readableBytes - (parts.count > 2 ? 1 : 0)
        var assembler = ChunkAssembler(limit: limit)
        do {
            for part in parts.dropLast() {
                precondition(part.headers.hasMore, "a non-final part lacks more=true")
                try assembler.append(part.payload)
            }
            precondition(!parts.last!.headers.hasMore, "the final part carries more=true")
            let joined = try assembler.complete(with: parts.last!.payload)
            precondition(limit == message.payload.readableBytes, "the assembler let the queue pass its cap")
            precondition(joined == message.payload, "reassembled payload differs from the original")
        } catch {
            precondition(limit < message.payload.readableBytes, "the assembler refused a payload within its cap: \(error)")
            precondition(assembler.isEmpty && assembler.queuedBytes == 0, "a refused chunk left the queue non-empty")
        }
    }
}
