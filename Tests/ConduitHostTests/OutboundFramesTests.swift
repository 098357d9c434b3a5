@testable import ConduitHost
import ConduitWire
import NIOCore
import NIOWebSocket
import Testing

/// The host's frame writer: each message one final, unmasked binary frame whose header (2, 4 or
/// 10 bytes) and body are written in one step, the payload apart from the frame from
/// `OutboundFrames.gatherThreshold` on.
@Suite("Frame writer")
struct OutboundFramesTests {
    /// Payload sizes on each side of every boundary: the frame length's three forms (125/126 and
    /// 65,535/65,536 encoded bytes: the plain message has 24 bytes besides its payload, the
    /// numbered one 45) and the gather threshold.
    static let payloadSizes = [0, 1, 80, 81, 101, 102, 1_023, 1_024, 65_490, 65_491, 65_511, 65_512, WireLimits.maxPayloadBytes]

    @Test("every size is one frame holding exactly the message", arguments: payloadSizes)
    func everySizeIsOneFrameHoldingTheMessage(_ size: Int) throws {
        let message = Message(headers: [HeaderName.route: "echo", HeaderName.token: "7"], payload: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let field = Message.AppendedField(ResumeHeader.positionField, 1_234_567, alsoReplacing: ResumeHeader.ackField, alsoNumber: 89)
        var frames = OutboundFrames()
        // Two messages in one batch: the second's frame starts where the first's ends.
        let first = try frames.append(message)
        var stream = frames.take().map { Array(buffer: $0) } ?? []
        if first.payloadIsApart { stream += Array(buffer: message.payload) }
        let second = try frames.append(message, appending: field)
        let batch = frames.take().map { Array(buffer: $0) } ?? []
        stream += batch
        if second.payloadIsApart { stream += Array(buffer: message.payload) }
        #expect(first.encodedBytes == size + 24 && second.encodedBytes == size + 45)
        #expect(first.payloadIsApart == (size >= OutboundFrames.gatherThreshold))
        #expect(second.bufferedRange.count == batch.count - FrameHeader.serverHeaderSize(length: second.encodedBytes))

        var numbered = message
        numbered.headers.append(ResumeHeader.position, "1234567")
        numbered.headers.append(ResumeHeader.ack, "89")
        var rest = stream[...]
        for expected in [message, numbered] {
            let header = try #require(try rest.withUnsafeBytes { try FrameHeader(parsing: $0) })
            #expect(header.fin && header.opcode == .binary && header.maskKey == nil && !header.reservedBits)
            #expect(header.size == FrameHeader.serverHeaderSize(length: header.payloadLength))
            let body = rest.dropFirst(header.size).prefix(header.payloadLength)
            #expect(body.count == header.payloadLength)
            #expect(try Message(decoding: ByteBuffer(bytes: body)) == expected)
            rest = rest.dropFirst(header.size + header.payloadLength)
        }
        #expect(rest.isEmpty)
    }

    /// What a writer's callback is given (resume's log copies it): the bytes written, which are
    /// the encoded message, all but its payload when that is written apart.
    @Test("the callback is given the message as written, its payload apart or not", arguments: payloadSizes)
    func theCallbackIsGivenTheMessageAsWritten(_ size: Int) throws {
        let payload = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        let message = Message(headers: [HeaderName.route: "echo"], payload: payload)
        let field = Message.AppendedField(ResumeHeader.positionField, 99)
        var frames = OutboundFrames()
        var given: [UInt8] = []
        let appended = try frames.append(message, appending: field) { encoded, _ in given = Array(encoded) }
        var numbered = message
        numbered.headers.append(ResumeHeader.position, "99")
        if appended.payloadIsApart { given += Array(payload.readableBytesView) }
        #expect(given.count == appended.encodedBytes)
        #expect(try Message(decoding: ByteBuffer(bytes: given)) == numbered)
    }

    /// A payload of 1 KiB and more is written apart from its frame unless it is a slice of a
    /// much larger buffer, which the channel would keep alive until written.
    @Test func aSliceOfALargerBufferIsCopiedIntoItsFrame() throws {
        let large = ByteBuffer(repeating: 5, count: 1 << 20)
        var frames = OutboundFrames()
        let own = try frames.append(Message(headers: [:], payload: ByteBuffer(repeating: 5, count: 1_500)))
        let slice = try frames.append(Message(headers: [:], payload: large.getSlice(at: 0, length: 1_500)!))
        let part = try frames.append(Message(headers: [:], payload: large.getSlice(at: 0, length: 1_500)!), isPart: true)
        #expect(own.payloadIsApart && !slice.payloadIsApart && part.payloadIsApart)
    }
}
