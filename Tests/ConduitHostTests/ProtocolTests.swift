import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

/// SPEC §2: RFC 6455 behaviour on the product's sockets.
@Suite("WebSocket protocol", .serialized, .timeLimit(.minutes(1)))
struct ProtocolTests {
    private func closeFrame(_ code: UInt16, _ reason: String = "") -> WebSocketFrame {
        var data = ByteBuffer()
        data.writeInteger(code)
        data.writeString(reason)
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
    }

    @Test func textFramesAreRefusedWith1003() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.sendFrame(.init(fin: true, opcode: .text, data: ByteBuffer(string: "hello")))
            #expect(try await client.nextClose().code == 1003)
        }
    }

    /// A peer that pings without reading the pongs: only the pong to its latest ping waits
    /// (RFC 6455 §5.5.3). Every pong used to wait, up to 8 MiB per connection outside the
    /// host's budget (561 MB for 100 such peers), before the connection was closed.
    @Test func pingsUnreadLeaveOnlyTheLatestPongWaiting() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect(client: "pinger", receiveBufferBytes: 4096)
            try await client.pauseReading()
            let count = 80_000
            let pings = (0..<count).flatMap { index -> [UInt8] in
                let payload = Array("ping-\(index)-".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 100 - "ping-\(index)-".utf8.count)
                return [0x89, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload
            }
            try await client.sendRaw(pings)
            // The host read them all once the last pong waits (each later one took its place).
            try await waitUntil {
                let queued = host.client("pinger")?.outboundQueuedBytes ?? 0
                return queued > 0 && queued <= 102
            }
            try await client.resumeReading()
            var pongs = 0
            while true {
                let frame = try await client.nextFrame()
                guard frame.opcode == .pong else { continue }
                pongs += 1
                if String(buffer: frame.data).hasPrefix("ping-\(count - 1)-") { break }
            }
            #expect(pongs < count, "pongs waiting for a slow reader were replaced by the latest")
            let echoed = try await client.request(Message(headers: ["route": "echo", "token": "1"], payload: ByteBuffer(string: "still here")))
            #expect(String(buffer: echoed.payload) == "still here")
        }
    }

    /// Two pings and a request in one read: the second pong waits for the first to be
    /// written, and the reply must not wait behind it (it once sat queued until the socket's
    /// writability changed, which a reading client never makes happen).
    @Test func aReplyAfterTwoPingsInOneReadIsNotHeldBack() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect(client: "two-pings")
            let request = try Message(headers: ["route": "echo", "token": "1"], payload: ByteBuffer(string: "after the pings")).encoded()
            let ping: [UInt8] = [0x89, 0x80 | 4, 0, 0, 0, 0] + Array("ping".utf8)
            let binary: [UInt8] = [0x82, 0x80 | UInt8(request.readableBytes), 0, 0, 0, 0] + Array(request.readableBytesView)
            try await client.sendRaw(ping + ping + binary)
            let reply = try await client.nextMessage(timeout: .seconds(5))
            #expect(String(buffer: reply.payload) == "after the pings")
        }
    }

    /// The same with a reply whose payload is written apart from its frame (1 KiB and up): the
    /// pong that waited went out between the frame's header and its payload, inside the frame.
    @Test func aPongNeverLandsInsideALargeReply() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect(client: "two-pings-large")
            let payload = ByteBuffer(bytes: (0..<2048).map { UInt8(truncatingIfNeeded: $0) })
            let request = try Message(headers: ["route": "echo", "token": "1"], payload: payload).encoded()
            let ping: [UInt8] = [0x89, 0x80 | 4, 0, 0, 0, 0] + Array("ping".utf8)
            let length = UInt16(request.readableBytes)
            let binary: [UInt8] = [0x82, 0x80 | 126, UInt8(length >> 8), UInt8(length & 0xFF), 0, 0, 0, 0] + Array(request.readableBytesView)
            try await client.sendRaw(ping + ping + binary)
            let reply = try await client.nextMessage(timeout: .seconds(5))
            #expect(reply.payload == payload)
            // The stream is still whole.
            try await client.send(Message(headers: ["route": "echo", "token": "2"], payload: ByteBuffer(string: "after")))
            #expect(String(buffer: try await client.nextMessage(timeout: .seconds(5)).payload) == "after")
        }
    }

    @Test func pingIsAnsweredWithPongCarryingTheSameData() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.sendFrame(.init(fin: true, opcode: .ping, data: ByteBuffer(string: "are you there")))
            let pong = try await client.nextFrame()
            #expect(pong.opcode == .pong)
            #expect(String(buffer: pong.data) == "are you there")
        }
    }

    @Test func closeHandshakeEchoesTheCode() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.sendFrame(closeFrame(4001, "bye"))
            #expect(try await client.nextClose().code == 4001)
            try await client.waitUntilClosed()
        }
    }

    @Test("invalid close codes are answered 1002", arguments: [UInt16(999), 1004, 1005, 1006, 1015, 2000, 5000])
    func invalidCloseCode(code: UInt16) async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.sendFrame(closeFrame(code))
            #expect(try await client.nextClose().code == 1002)
        }
    }

    @Test func fragmentedMessagesAreJoined() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            var encoded = try Message(headers: ["route": "echo", "token": "f"], payload: Array("fragmented".utf8)).encoded()
            let first = encoded.readSlice(length: 5)!
            let second = encoded.readSlice(length: 7)!
            try await client.sendFrame(.init(fin: false, opcode: .binary, data: first))
            try await client.sendFrame(.init(fin: false, opcode: .continuation, data: second))
            try await client.sendFrame(.init(fin: true, opcode: .ping, data: ByteBuffer(string: "mid")))
            try await client.sendFrame(.init(fin: true, opcode: .continuation, data: encoded))
            #expect(try await client.nextFrame().opcode == .pong)
            let reply = try await client.nextMessage()
            #expect(String(buffer: reply.payload) == "fragmented")
        }
    }

    /// On a resuming connection an unfragmented frame of 1 KiB and up is unmasked into a
    /// buffer of its own (resume's window keeps an echoed payload without a copy); fragments of
    /// that size, read beside other frames, with a ping between them, still join into the one
    /// message.
    @Test func largeFragmentsOnAResumingConnectionAreJoined() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await TestWebSocketClient.connect(port: host.port, path: host.path(client: "frag") + "&resume=0")
            #expect(try await client.nextMessage().headers.route == ResumeHeader.resumeRoute)
            let payload = ByteBuffer(bytes: (0..<30_000).map { UInt8(truncatingIfNeeded: $0 / 7) })
            var encoded = try Message(headers: ["route": "echo", "pos": "1"], payload: payload).encoded()
            let first = encoded.readSlice(length: 9_000)!
            let second = encoded.readSlice(length: 20)!
            try await client.sendFrame(.init(fin: false, opcode: .binary, data: first))
            try await client.sendFrame(.init(fin: true, opcode: .ping, data: ByteBuffer(string: "mid")))
            try await client.sendFrame(.init(fin: false, opcode: .continuation, data: second))
            try await client.sendFrame(.init(fin: true, opcode: .continuation, data: encoded))
            #expect(try await client.nextFrame().opcode == .pong)
            let reply = try await client.nextMessage()
            #expect(reply.headers["pos"] == "1" && reply.payload == payload)
        }
    }

    @Test func oversizeMessagesAreClosedWith1009() async throws {
        let yaml = "limits:\n  maxMessageBytes: 4096\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let single = try await host.connect(client: "a")
            try await single.sendFrame(.init(fin: true, opcode: .binary, data: ByteBuffer(repeating: 0, count: 5000)))
            #expect(try await single.nextClose().code == 1009)
            let fragmented = try await host.connect(client: "b")
            for opcode in [WebSocketOpcode.binary, .continuation, .continuation] {
                try await fragmented.sendFrame(.init(fin: false, opcode: opcode, data: ByteBuffer(repeating: 0, count: 2000)))
            }
            let close = try await fragmented.nextClose()
            #expect(close.code == 1009, "\(close)")
            let good = try await host.connect(client: "c")
            #expect(try await good.request(.init(headers: ["route": "echo"])).headers["route"] == "echo")
        }
    }

    @Test func unmaskedClientFramesAreAProtocolError() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.sendFrame(.init(fin: true, opcode: .binary, data: try Message(headers: ["route": "echo"]).encoded()), masked: false)
            #expect(try await client.nextClose().code == 1002)
        }
    }

    @Test func reservedBitsAndOpcodesAreProtocolErrors() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let rsv = try await host.connect(client: "rsv")
            try await rsv.sendFrame(.init(fin: true, rsv1: true, opcode: .binary, data: ByteBuffer(bytes: [0, 0, 0])))
            #expect(try await rsv.nextClose().code == 1002)
            let opcode = try await host.connect(client: "op")
            try await opcode.sendRaw([0x83, 0x80, 1, 2, 3, 4])  // fin + reserved opcode 3, masked, empty
            #expect(try await opcode.nextClose().code == 1002)
        }
    }
}

/// Frames split or coalesced arbitrarily by TCP (SPEC §2).
@Suite("Frames across TCP segments", .serialized, .timeLimit(.minutes(1)))
struct SegmentationTests {
    /// The wire bytes of a masked client frame, produced by NIO's own encoder.
    private func wireBytes(_ message: Message) throws -> [UInt8] {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: .init([9, 8, 7, 6]), data: try message.encoded())
        try channel.writeOutbound(frame)
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    @Test func coalescedFramesAreAllAnswered() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            let bytes = try (0..<20).flatMap { try wireBytes(Message(headers: ["route": "echo", "token": "\($0)"])) }
            try await client.sendRaw(bytes)
            for index in 0..<20 {
                #expect(try await client.nextMessage().headers["token"] == "\(index)")
            }
        }
    }

    @Test func aFrameSplitIntoSingleBytesIsReassembled() async throws {
        // 330 sends of a byte each took past the message's 30 s to arrive in a loaded full run,
        // and the host closed the connection as it should (the arrival timeout).
        let yaml = "limits:\n  messageArrivalTimeoutSeconds: 600\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            for byte in try wireBytes(Message(headers: ["route": "echo", "token": "split"], payload: Array(repeating: 5, count: 300))) {
                try await client.sendRaw([byte])
            }
            let reply = try await client.nextMessage()
            #expect(reply.headers["token"] == "split")
            #expect(reply.payload.readableBytes == 300)
        }
    }
}
