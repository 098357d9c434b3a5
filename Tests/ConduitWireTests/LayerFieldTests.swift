import ConduitWire
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
        let size = try message.validatedEncodedSize(appending: ("pos", "12345"))
        #expect(size == listed.encodedSize)
        var appended = ByteBuffer()
        message.encode(into: &appended, validatedSize: size, appending: ("pos", "12345"))
        #expect(appended == (try listed.encoded()), "\(vector.name)")
    }

    @Test("an appended field counts against the limits")
    func appendedFieldIsChecked() {
        let full = Message(headers: Headers((0..<WireLimits.maxHeaders).map { ("k\($0)", "v") }))
        #expect(throws: WireError.self) { try full.validatedEncodedSize(appending: ("pos", "1")) }
        let long = String(repeating: "x", count: WireLimits.maxKeyBytes + 1)
        #expect(throws: WireError.self) { try Message().validatedEncodedSize(appending: (long, "1")) }
    }

    @Test("set-aside fields leave the list and keep their last value")
    func setAsideFields() throws {
        let message = Message(
            headers: Headers([("ack", "1"), ("route", "echo"), ("pos", "7"), ("token", "t"), ("ack", "3")]), payload: [1, 2, 3])
        var reused = Headers()
        var fields = SetAsideFields("ack", "pos")
        let decoded = try Message(decoding: try message.encoded(), reusing: &reused, settingAside: &fields)
        #expect(decoded.headers == ["route": "echo", "token": "t"])
        #expect(decoded.payload == message.payload)
        #expect(fields.firstValue == "3" && fields.secondValue == "7")

        var none = SetAsideFields("ack", "pos")
        let plain = try Message(decoding: try Message(headers: ["route": "echo"]).encoded(), reusing: &reused, settingAside: &none)
        #expect(plain.headers == ["route": "echo"] && none.firstValue == nil && none.secondValue == nil)
    }
}
