import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// Seeded random inputs, so a failure names a reproducible seed.
@Suite("Codec properties")
struct PropertyTests {
    private static let alphabet = Array("ab-_.0123456789ZéЖ✓🙂 \"\\\n").map(String.init)

    private func randomString(_ rng: inout SplitMix64, maxCharacters: Int) -> String {
        (0..<Int.random(in: 0...maxCharacters, using: &rng)).map { _ in Self.alphabet.randomElement(using: &rng)! }.joined()
    }

    @Test("random messages round-trip", arguments: 0..<20)
    func roundTrip(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<100 {
            let headers = Headers((0..<Int.random(in: 0...12, using: &rng)).map { _ in
                (randomString(&rng, maxCharacters: 20), randomString(&rng, maxCharacters: 40))
            })
            let payload = (0..<Int.random(in: 0...2048, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let message = Message(headers: headers, payload: payload)
            let encoded = try message.encoded()
            #expect(encoded.readableBytes == message.encodedSize)
            #expect(try Message(decoding: encoded) == message, "seed \(seed)")
        }
    }

    @Test("random bytes never crash the decoder", arguments: 0..<20)
    func randomBytes(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? Message(decoding: ByteBuffer(bytes: bytes))
        }
    }

    @Test("every truncation of a valid message is rejected", arguments: FramingVectors.shared.valid.prefix(8))
    func truncations(_ vector: FramingVectors.Valid) {
        let whole = ByteBuffer(hex: vector.hex)
        for length in 0..<whole.readableBytes {
            #expect(throws: WireError.self) { try Message(decoding: whole.getSlice(at: 0, length: length)!) }
        }
    }

    @Test("integers beyond 2^53 stay strings")
    func typedBoundaries() {
        #expect(HeaderValue(parsing: "9007199254740991") == .integer(9_007_199_254_740_991))
        #expect(HeaderValue(parsing: "-9007199254740991") == .integer(-9_007_199_254_740_991))
        #expect(HeaderValue(parsing: "9007199254740992") == .string("9007199254740992"))
        #expect(HeaderValue(parsing: "-") == .string("-"))
        #expect(HeaderValue(parsing: "1.") == .string("1."))
        #expect(HeaderValue(parsing: ".5") == .string(".5"))
        #expect(HeaderValue(parsing: "-0.5") == .decimal(-0.5))
        // Leading zeros count for nothing, as in the JavaScript client's view (`Number`): more
        // than 16 digits in all were a string here.
        #expect(HeaderValue(parsing: "00000000000000000001") == .integer(1))
        #expect(HeaderValue(parsing: "-0000000000000000000000009007199254740991") == .integer(-9_007_199_254_740_991))
        #expect(HeaderValue(parsing: "0009007199254740992") == .string("0009007199254740992"))
    }
}
