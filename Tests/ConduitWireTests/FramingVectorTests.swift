import ConduitWire
import NIOCore
import Testing

@Suite("Golden framing vectors")
struct FramingVectorTests {
    @Test("decodes every valid vector", arguments: FramingVectors.shared.valid)
    func decodesValid(_ vector: FramingVectors.Valid) throws {
        let message = try Message(decoding: ByteBuffer(hex: vector.hex))
        #expect(message.headers.map { [$0.name, $0.value] } == vector.headers)
        #expect(message.payload.hex == vector.payloadHex)
    }

    @Test("encodes every valid vector byte for byte", arguments: FramingVectors.shared.valid)
    func encodesValid(_ vector: FramingVectors.Valid) throws {
        let message = Message(
            headers: Headers(vector.headers.map { ($0[0], $0[1]) }),
            payload: ByteBuffer(hex: vector.payloadHex)
        )
        #expect(try message.encoded().hex == vector.hex)
        #expect(message.encodedSize == vector.hex.count / 2)
    }

    @Test("encodes every valid vector into raw memory, whole or as a prefix before its payload", arguments: FramingVectors.shared.valid)
    func encodesValidIntoRawMemory(_ vector: FramingVectors.Valid) throws {
        let message = Message(headers: Headers(vector.headers.map { ($0[0], $0[1]) }), payload: ByteBuffer(hex: vector.payloadHex))
        let size = try message.validatedEncodedSize()
        // One byte more than the message needs, which must stay untouched.
        var whole = [UInt8](repeating: 0xEE, count: size + 1)
        let written = whole.withUnsafeMutableBytes { message.encode(into: $0) }
        #expect(written == size)
        #expect(whole.last == 0xEE)
        var gathered = [UInt8](repeating: 0xEE, count: size - message.payload.readableBytes + 1)
        let prefix = gathered.withUnsafeMutableBytes { message.encodePrefix(into: $0) }
        #expect(prefix == size - message.payload.readableBytes)
        #expect(gathered.last == 0xEE)
        #expect(ByteBuffer(bytes: whole.dropLast()).hex == vector.hex)
        #expect(ByteBuffer(bytes: gathered.dropLast() + Array(buffer: message.payload)).hex == vector.hex)
    }

    @Test("typed view matches every valid vector", arguments: FramingVectors.shared.valid)
    func typedView(_ vector: FramingVectors.Valid) throws {
        let message = try Message(decoding: ByteBuffer(hex: vector.hex))
        for (name, expected) in vector.typed {
            let actual = try #require(message.headers.typed(name), "no header \(name)")
            switch (actual, expected) {
            case (.bool(let a), .bool(let e)): #expect(a == e, "\(name)")
            case (.null, .null): break
            case (.integer(let a), .number(let e)): #expect(Double(a) == e, "\(name)")
            case (.decimal(let a), .number(let e)): #expect(a == e, "\(name)")
            case (.string(let a), .string(let e)): #expect(a == e, "\(name)")
            default: Issue.record("\(name): typed \(actual), expected \(expected)")
            }
        }
    }

    @Test("rejects every invalid vector with its error", arguments: FramingVectors.shared.invalid)
    func rejectsInvalid(_ vector: FramingVectors.Invalid) {
        #expect {
            _ = try Message(decoding: ByteBuffer(hex: vector.hex))
        } throws: { error in
            (error as? WireError)?.code.name == vector.error
        }
    }

    @Test("the declared limits are the codec's")
    func limits() {
        let limits = FramingVectors.shared.limits
        #expect(limits.maxHeaders == WireLimits.maxHeaders)
        #expect(limits.maxKeyBytes == WireLimits.maxKeyBytes)
        #expect(limits.maxValueBytes == WireLimits.maxValueBytes)
        #expect(limits.maxPayloadBytesPerMessage == WireLimits.maxPayloadBytes)
    }
}
