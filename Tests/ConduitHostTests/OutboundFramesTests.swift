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

    /// What a writer's callback is given (resume's log copies it): the bytes written and the
    /// payload when it is apart, which together are exactly the encoded message.
    @Test("the callback is given the whole message, its payload apart or not", arguments: payloadSizes)
    func theCallbackIsGivenTheWholeMessage(_ size: Int) throws {
        let message = Message(headers: [HeaderName.route: "echo"], payload: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        let field = Message.AppendedField(ResumeHeader.positionField, 99)
        var frames = OutboundFrames()
        var given: [UInt8] = []
        var apart = -1
        let appended = try frames.append(message, appending: field) { encoded, payloadApart, _ in
            given = Array(encoded) + Array(payloadApart)
            apart = payloadApart.count
        }
        var numbered = message
        numbered.headers.append(ResumeHeader.position, "99")
        #expect(given.count == appended.encodedBytes)
        #expect(apart == (appended.payloadIsApart ? size : 0))
        #expect(try Message(decoding: ByteBuffer(bytes: given)) == numbered)
    }
}
