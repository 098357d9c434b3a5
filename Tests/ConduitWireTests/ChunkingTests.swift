import ConduitWire
import NIOCore
import Testing

@Suite("Splitting and chunk assembly")
struct ChunkingTests {
    @Test func smallMessageIsNotSplit() {
        let message = Message(headers: ["route": "echo"], payload: ByteBuffer(repeating: 1, count: 100))
        #expect(message.split() == [message])
    }

    @Test func largePayloadSplitsAndJoins() throws {
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let message = Message(headers: ["route": "echo", "token": "9"], payload: bytes)
        let parts = message.split()
        #expect(parts.count == 4)
        #expect(parts.dropLast().allSatisfy { $0.headers.hasMore && $0.headers.route == "echo" && $0.payload.readableBytes == 65_535 })
        #expect(parts.last?.headers == message.headers)
        var assembler = ChunkAssembler(limit: 1 << 20)
        for part in parts.dropLast() {
            try assembler.append(Message(decoding: part.encoded()).payload)
        }
        let joined = try assembler.complete(with: parts.last!.payload)
        #expect(joined == message.payload)
        #expect(assembler.isEmpty && assembler.queuedBytes == 0)
    }

    @Test func capEmptiesQueueAndNextChunkStartsAgain() throws {
        var assembler = ChunkAssembler(limit: 10)
        try assembler.append(ByteBuffer(repeating: 1, count: 6))
        #expect(throws: WireError.self) { try assembler.append(ByteBuffer(repeating: 2, count: 6)) }
        #expect(assembler.isEmpty)
        try assembler.append(ByteBuffer(repeating: 3, count: 4))
        #expect(try assembler.complete(with: ByteBuffer(repeating: 4, count: 2)) == ByteBuffer(bytes: [3, 3, 3, 3, 4, 4]))
    }

    @Test func completingOverCapFails() throws {
        var assembler = ChunkAssembler(limit: 10)
        try assembler.append(ByteBuffer(repeating: 1, count: 8))
        #expect(throws: WireError.self) { _ = try assembler.complete(with: ByteBuffer(repeating: 1, count: 3)) }
        #expect(assembler.isEmpty)
    }

    @Test func completeWithNothingQueuedReturnsPayload() throws {
        var assembler = ChunkAssembler(limit: 10)
        #expect(try assembler.complete(with: ByteBuffer(string: "hi")) == ByteBuffer(string: "hi"))
    }
}
