import ConduitWire
import NIOCore
import Testing

@Suite("Encoder refuses input over a limit")
struct EncoderLimitTests {
    private func refuses(_ message: Message, with code: WireError.Code) {
        var buffer = ByteBuffer(string: "keep")
        #expect(throws: WireError.self) { try message.encode(into: &buffer) }
        #expect((try? message.validateLimits()) == nil)
        do { try message.validateLimits() } catch { #expect(error.code == code) }
        #expect(buffer == ByteBuffer(string: "keep"), "nothing written on refusal")
    }

    @Test func tooManyHeaders() {
        refuses(Message(headers: Headers((0..<256).map { ("k\($0)", "v") })), with: .tooManyHeaders)
    }

    @Test func keyTooLong() {
        refuses(Message(headers: [String(repeating: "k", count: 256): "v"]), with: .keyTooLong)
        // 128 two-byte characters: 128 characters but 256 UTF-8 bytes.
        refuses(Message(headers: [String(repeating: "é", count: 128): "v"]), with: .keyTooLong)
    }

    @Test func valueTooLong() {
        refuses(Message(headers: ["k": String(repeating: "v", count: 65_536)]), with: .valueTooLong)
    }

    @Test func payloadTooLarge() {
        refuses(Message(headers: [:], payload: ByteBuffer(repeating: 1, count: 65_536)), with: .payloadTooLarge)
    }

    @Test func exactLimitsEncode() throws {
        let message = Message(
            headers: Headers((0..<255).map { _ in (String(repeating: "k", count: 255), "v") }),
            payload: ByteBuffer(repeating: 7, count: 65_535)
        )
        let decoded = try Message(decoding: message.encoded())
        #expect(decoded == message)
    }
}
