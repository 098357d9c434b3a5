@testable import ConduitWire
import NIOCore
import Testing

/// The two ways a layer above the codec adds or takes its own header fields without copying a
/// message's header list (resume's `pos` and `ack`): the bytes must be exactly those of the
/// message with the field in its list.
@Suite("Fields a layer appends or sets aside")
struct LayerFieldTests {
    @Test("an appended field encodes as the same field last in the list", arguments: FramingVectors.shared.valid)
    func appendedFieldMatchesTheListed(_ vector: FramingVectors.Valid) throws {
        let message = try Message(decoding: ByteBuffer(hex: vector.hex))
        guard message.headers.count < WireLimits.maxHeaders else { return }
        var listed = message
        listed.headers.append("pos", "12345")
        let size = try message.validatedEncodedSize(appending: Message.AppendedField("pos", 12345))
        #expect(size == listed.encodedSize)
        var appended = ByteBuffer()
        message.encode(into: &appended, validatedSize: size, appending: Message.AppendedField("pos", 12345))
        #expect(appended == (try listed.encoded()), "\(vector.name)")
    }

    @Test("an appended number is written as its decimal digits", arguments: [0, 7, 9, 10, 99, 100, 999, 1000, 12345, 1 << 40, 9_999_999_999_999_999_999, 10_000_000_000_000_000_000, UInt64.max])
    func appendedNumberDigits(_ number: UInt64) throws {
        let message = Message(headers: ["route": "r"], payload: [1, 2])
        let field = Message.AppendedField("pos", number)
        var appended = ByteBuffer()
        message.encode(into: &appended, validatedSize: try message.validatedEncodedSize(appending: field), appending: field)
        #expect(try Message(decoding: appended).headers == Headers([("route", "r"), ("pos", "\(number)")]))
    }

    @Test("every number up to 100,000 and random ones of every length are written as their digits")
    func appendedNumbersOfEveryLength() {
        var generator = SystemRandomNumberGenerator()
        // 9, 99, …, nineteen nines, and then the rest of uint64: every length of number.
        let largest = (1...19).map { digits in (1..<digits).reduce(UInt64(9)) { value, _ in value * 10 + 9 } } + [UInt64.max]
        let random = largest.flatMap { upper in (0..<50).map { _ in UInt64.random(in: upper / 10 + 1...upper, using: &generator) } }
        // Where a length starts and ends, and every bit length's bounds (the count starts from it).
        let bounds = largest.flatMap { [$0, $0 &+ 1] } + (1..<64).flatMap { bit in [(UInt64(1) << bit) - 1, UInt64(1) << bit] }
        let wrong = (Array(0...100_000) + random + bounds).filter { number in
            var digits = [UInt8](repeating: 0, count: number.decimalDigitCount)
            digits.withUnsafeMutableBytes { Message.AppendedField.writeDigits(of: number, count: number.decimalDigitCount, into: $0) }
            return String(decoding: digits, as: UTF8.self) != String(number)
        }
        #expect(wrong.isEmpty, "written wrong: \(wrong.prefix(5))")
    }

    @Test("an appended field takes the place of the list's fields of its name")
    func appendedFieldReplacesTheListed() throws {
        let message = Message(headers: Headers([("pos", "9"), ("route", "r"), ("pos", "8"), ("po", "x"), ("posx", "y")]), payload: [1])
        let size = try message.validatedEncodedSize(appending: Message.AppendedField("pos", 12))
        var appended = ByteBuffer()
        message.encode(into: &appended, validatedSize: size, appending: Message.AppendedField("pos", 12))
        let expected = Message(headers: Headers([("route", "r"), ("po", "x"), ("posx", "y"), ("pos", "12")]), payload: [1])
        #expect(size == expected.encodedSize)
        #expect(appended == (try expected.encoded()))
        // Replacing makes room: a full list with the field in it still fits.
        let full = Message(headers: Headers((1..<WireLimits.maxHeaders).map { ("k\($0)", "v") } + [("pos", "1")]))
        #expect(throws: Never.self) { try full.validatedEncodedSize(appending: Message.AppendedField("pos", 2)) }
        let overFull = Message(headers: Headers((2..<WireLimits.maxHeaders).map { ("k\($0)", "v") } + [("pos", "1"), ("pos", "2"), ("pos", "3")]))
        #expect(overFull.headers.count > WireLimits.maxHeaders)
        #expect(throws: Never.self) { try overFull.validatedEncodedSize(appending: Message.AppendedField("pos", 4)) }
    }

    @Test("an appended field also takes the place of the other name its layer owns")
    func appendedFieldAlsoReplacesTheOtherName() throws {
        let message = Message(headers: Headers([("ack", "9"), ("route", "r"), ("pos", "8"), ("ack", "7"), ("acks", "y"), ("as", "z")]), payload: [1])
        let field = Message.AppendedField("pos", 12, alsoReplacing: "ack")
        let size = try message.validatedEncodedSize(appending: field)
        var appended = ByteBuffer()
        message.encode(into: &appended, validatedSize: size, appending: field)
        let expected = Message(headers: Headers([("route", "r"), ("acks", "y"), ("as", "z"), ("pos", "12")]), payload: [1])
        #expect(size == expected.encodedSize)
        #expect(appended == (try expected.encoded()))

        // With a number of its own, the other name is appended too, after the first.
        let both = Message.AppendedField("pos", 12, alsoReplacing: "ack", alsoNumber: 4_567_890)
        let bothSize = try message.validatedEncodedSize(appending: both)
        var appendedBoth = ByteBuffer()
        message.encode(into: &appendedBoth, validatedSize: bothSize, appending: both)
        let expectedBoth = Message(headers: Headers([("route", "r"), ("acks", "y"), ("as", "z"), ("pos", "12"), ("ack", "4567890")]), payload: [1])
        #expect(bothSize == expectedBoth.encodedSize)
        #expect(appendedBoth == (try expectedBoth.encoded()))
        // Both count against the header limit.
        let full = Message(headers: Headers((1..<WireLimits.maxHeaders).map { ("k\($0)", "v") }))
        #expect(throws: Never.self) { try full.validatedEncodedSize(appending: Message.AppendedField("pos", 1, alsoReplacing: "ack")) }
        #expect(throws: WireError.self) { try full.validatedEncodedSize(appending: Message.AppendedField("pos", 1, alsoReplacing: "ack", alsoNumber: 2)) }
    }

    @Test("a field counted up encodes as one made for its number, in memory with room to spare or none", arguments: [
        0, 1, 8, 9, 10, 98, 99, 100, 998, 999, 99_999, 1_234_567, 9_999_999_999, 9_999_999_999_999_999_998, UInt64.max - 2,
    ] as [UInt64])
    func countedUpField(_ start: UInt64) throws {
        let message = Message(headers: ["route": "r", "pos": "7"], payload: [1, 2, 3])
        var counted = Message.AppendedField("pos", start, alsoReplacing: "ack")
        for number in start...(start + 2) {
            let made = Message.AppendedField("pos", number, alsoReplacing: "ack")
            #expect(counted.number == number)
            let size = try message.validatedEncodedSize(appending: counted)
            #expect(size == (try message.validatedEncodedSize(appending: made)))
            // Exactly the prefix's room (the field is copied byte by byte), and a buffer's spare room.
            let prefix = size - message.payload.readableBytes
            let exact = UnsafeMutableRawBufferPointer.allocate(byteCount: prefix, alignment: 1)
            defer { exact.deallocate() }
            #expect(message.encodePrefix(into: exact, appending: counted) == prefix)
            var roomy = ByteBuffer()
            message.encode(into: &roomy, validatedSize: size, appending: counted)
            var expected = message
            expected.headers["pos"] = "\(number)"
            let encoded = try expected.encoded()
            #expect(roomy == encoded, "\(number)")
            #expect(Array(exact) == Array(encoded.readableBytesView.prefix(prefix)), "\(number)")
            if number < start + 2 { counted.increment() }
        }
    }

    @Test("an appended field counts against the limits")
    func appendedFieldIsChecked() {
        let full = Message(headers: Headers((0..<WireLimits.maxHeaders).map { ("k\($0)", "v") }))
        #expect(throws: WireError.self) { try full.validatedEncodedSize(appending: Message.AppendedField("pos", 1)) }
    }

    @Test("room left for fields to come counts against the header limit")
    func roomForFieldsToCome() {
        let full = Message(headers: Headers((0..<WireLimits.maxHeaders).map { ("k\($0)", "v") }))
        let roomy = Message(headers: Headers((1..<WireLimits.maxHeaders).map { ("k\($0)", "v") }))
        #expect(throws: Never.self) { try full.validateHeaderLimits() }
        #expect(throws: Never.self) { try roomy.validateHeaderLimits(leavingRoomFor: .position) }
        // The error names what the room is kept for: the limit a sender knows is 255.
        #expect(throws: WireError(.tooManyHeaders, "255 headers; at most 254 fit in one message beside the 'pos' added on its way out")) {
            try full.validateHeaderLimits(leavingRoomFor: .position)
        }
        #expect(throws: WireError(.tooManyHeaders, "254 headers; at most 253 fit in one message beside the 'pos' and 'more' added on its way out")) {
            try roomy.validateHeaderLimits(leavingRoomFor: [.position, .more])
        }
        #expect(throws: WireError(.tooManyHeaders, "256 headers; at most 255 fit in one message")) {
            try Message(headers: Headers((0...WireLimits.maxHeaders).map { ("k\($0)", "v") })).validateHeaderLimits()
        }
        // Sending: `pos` when numbered, and `more` on the parts of a payload split.
        #expect(throws: Never.self) { try full.validateHeaderLimitsForSending(numbered: false) }
        #expect(throws: WireError.self) { try full.validateHeaderLimitsForSending(numbered: true) }
        #expect(throws: Never.self) { try roomy.validateHeaderLimitsForSending(numbered: true) }
        var large = roomy
        large.payload = ByteBuffer(repeating: 0, count: WireLimits.maxPayloadBytes + 1)
        #expect(throws: Never.self) { try large.validateHeaderLimitsForSending(numbered: false) }
        #expect(throws: WireError.self) { try large.validateHeaderLimitsForSending(numbered: true) }
    }

    @Test("set-aside fields leave the list and keep their last value")
    func setAsideFields() throws {
        let message = Message(
            headers: Headers([("ack", "1"), ("route", "echo"), ("pos", "7"), ("token", "t"), ("ack", "3")]), payload: [1, 2, 3])
        var reused = Headers()
        var fields = SetAsideNumbers("ack", "pos")
        let decoded = try Message(decoding: try message.encoded(), reusing: &reused, settingAside: &fields)
        #expect(decoded.headers == ["route": "echo", "token": "t"])
        #expect(decoded.payload == message.payload)
        #expect(fields.firstValue == .number(3) && fields.secondValue == .number(7))

        var none = SetAsideNumbers("ack", "pos")
        let plain = try Message(decoding: try Message(headers: ["route": "echo"]).encoded(), reusing: &reused, settingAside: &none)
        #expect(plain.headers == ["route": "echo"] && none.firstValue == .absent && none.secondValue == .absent)
    }

    @Test("set-aside numbers of every length parse alike with eight bytes to read after them or fewer")
    func setAsideNumbersOfEveryLength() throws {
        var generator = SystemRandomNumberGenerator()
        let numbers = (1...20).flatMap { length in
            [String(repeating: "0", count: length), String(repeating: "9", count: length), "1" + String(repeating: "0", count: length - 1),
             String((0..<length).map { _ in "0123456789".randomElement(using: &generator)! })]
        }
        // Each byte of each in turn not a digit (just below and above them, a letter, NUL, a space, two bytes).
        let broken = numbers.flatMap { number in
            number.indices.flatMap { index in
                ["/", ":", "a", "\u{0}", " ", "é"].map { bad in String(number[..<index]) + bad + String(number[number.index(after: index)...]) }
            }
        }
        for text in numbers + broken {
            // No payload: two bytes follow the value; sixteen: more than eight.
            for payload in [[UInt8](), [UInt8](repeating: 0x39, count: 16)] {
                var fields = SetAsideNumbers("ack", "pos")
                var reused = Headers()
                let message = Message(headers: Headers([("route", "r"), ("pos", text)]), payload: payload)
                let decoded = try Message(decoding: try message.encoded(), reusing: &reused, settingAside: &fields)
                #expect(decoded.headers == ["route": "r"])
                let expected = text.utf8.allSatisfy { (0x30...0x39).contains($0) } ? UInt64(text).map { SetAsideNumbers.Value.number($0) } ?? .malformed : .malformed
                #expect(fields.secondValue == expected, "'\(text)' with \(payload.count) bytes of payload")
            }
        }
    }

    @Test("a set-aside value that is not a decimal uint64 is malformed, not an error")
    func malformedSetAsideValues() throws {
        for bad in ["", "-1", "+1", "1.0", " 1", "1a", "18446744073709551616", "99999999999999999999", "184467440737095516150", "x", "١"] {
            var fields = SetAsideNumbers("ack", "pos")
            var reused = Headers()
            let decoded = try Message(decoding: try Message(headers: Headers([("pos", bad), ("route", "r")])).encoded(), reusing: &reused, settingAside: &fields)
            #expect(fields.secondValue == .malformed, "\(bad)")
            #expect(decoded.headers == ["route": "r"])
        }
        var padded = SetAsideNumbers("ack", "pos")
        var reusedAgain = Headers()
        _ = try Message(decoding: try Message(headers: ["pos": "0000000000000000000000001"]).encoded(), reusing: &reusedAgain, settingAside: &padded)
        #expect(padded.secondValue == .number(1), "leading zeros are digits too")
        #expect(UInt64(decimalDigits: "9999999999999999999".utf8) == 9_999_999_999_999_999_999, "nineteen nines")
        var largest = SetAsideNumbers("ack", "pos")
        var reused = Headers()
        _ = try Message(decoding: try Message(headers: ["ack": "18446744073709551615"]).encoded(), reusing: &reused, settingAside: &largest)
        #expect(largest.firstValue == .number(.max))
    }

    @Test("a set-aside value that is not UTF-8 is refused as any value is, whatever follows it")
    func setAsideValueThatIsNotUTF8() throws {
        var encoded = try Message(headers: Headers([("pos", "1"), ("route", "r"), ("pos", "2")])).encoded()
        // The first value's only byte: count, key length, "pos", value length.
        encoded.setBytes([0xFF], at: encoded.readerIndex + 1 + 1 + 3 + 2)
        var fields = SetAsideNumbers("ack", "pos")
        var reused = Headers()
        #expect {
            _ = try Message(decoding: encoded, reusing: &reused, settingAside: &fields)
        } throws: { error in
            (error as? WireError)?.code.name == "invalid-utf8"
        }
    }

    @Test("setting fields aside changes nothing else of any vector", arguments: FramingVectors.shared.valid)
    func setAsideDecodesEveryVectorAlike(_ vector: FramingVectors.Valid) throws {
        let plain = try Message(decoding: ByteBuffer(hex: vector.hex))
        var fields = SetAsideNumbers("ack", "pos")
        var reused = Headers()
        let decoded = try Message(decoding: ByteBuffer(hex: vector.hex), reusing: &reused, settingAside: &fields)
        #expect(decoded == plain)
    }

    @Test("a message setting fields aside fails every invalid vector with its error", arguments: FramingVectors.shared.invalid)
    func setAsideRejectsEveryInvalidVector(_ vector: FramingVectors.Invalid) throws {
        var fields = SetAsideNumbers("ack", "pos")
        var reused = Headers()
        #expect {
            _ = try Message(decoding: ByteBuffer(hex: vector.hex), reusing: &reused, settingAside: &fields)
        } throws: { error in
            (error as? WireError)?.code.name == vector.error
        }
    }
}
