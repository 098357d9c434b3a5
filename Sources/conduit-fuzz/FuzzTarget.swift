import ConduitWire
import NIOCore

/// One fuzz input through the decoder and the chunk reassembler. A property that does not
/// hold traps, which libFuzzer reports as a crash with the input that caused it.
///
/// - Decoding any bytes either throws a `WireError` or yields a message that re-encodes to
///   exactly those bytes (the codec is a bijection on valid input).
/// - A decoded message split into parts and joined again by a `ChunkAssembler` gives back its
///   payload; an assembler with a cap refuses exactly when the queued bytes pass it.
enum FuzzTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        let input = ByteBuffer(bytes: bytes)
        guard let message = try? Message(decoding: input) else { return }
        roundTrip(message, original: input)
        reassemble(message, partSize: Int(bytes.first ?? 1) % 7 + 1)
    }

    private static func roundTrip(_ message: Message, original: ByteBuffer) {
        precondition(message.encodedSize == original.readableBytes, "encodedSize disagrees with the decoded length")
        let encoded = try! message.encoded()
        precondition(encoded == original, "re-encoding a decoded message changed its bytes")
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
