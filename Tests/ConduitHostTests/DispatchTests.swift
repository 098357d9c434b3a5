import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOWebSocket
import Testing

/// SPEC §1 and §3: replies, error replies, bad messages, chunk queues, digest, internal routes.
@Suite("Dispatch", .serialized, .timeLimit(.minutes(1)))
struct DispatchTests {
    private func errorBody(_ message: Message) throws -> [String: String] {
        let json = try JSONSerialization.jsonObject(with: Data(message.payload.readableBytesView)) as? [String: Any]
        return try #require(json?["err"] as? [String: String])
    }

    @Test func malformedMessageGetsBadRequestAndTheSocketStaysUsable() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.sendFrame(.init(fin: true, opcode: .binary, data: ByteBuffer(bytes: [1, 5, 0x72])))
            let error = try await client.nextMessage()
            #expect(error.headers["error"] == "BadRequestError")
            #expect(try errorBody(error)["type"] == "BadRequestError")
            try await client.sendFrame(.init(fin: true, opcode: .binary, data: ByteBuffer(bytes: [0, 0, 0, 0xFF])))
            #expect(try await client.nextMessage().headers["error"] == "BadRequestError")
            #expect(try await client.request(.init(headers: ["route": "echo", "token": "1"])).headers["token"] == "1")
        }
    }

    @Test func anErrorReplyKeepsTheRouteAndTokenItCouldRead() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect(client: "correlated")
            // Good headers, then a payload length that promises 9 bytes where 2 follow.
            var bytes = try Message(headers: ["route": "echo", "token": "t-42"]).encoded()
            bytes.moveWriterIndex(to: bytes.writerIndex - 2)
            bytes.writeInteger(UInt16(9))
            bytes.writeBytes([1, 2])
            try await client.sendFrame(.init(fin: true, opcode: .binary, data: bytes))
            let error = try await client.nextMessage()
            #expect(error.headers["error"] == "BadRequestError")
            #expect(error.headers["token"] == "t-42", "the client can match the error to its request")
            #expect(error.headers["route"] == "echo")
        }
    }

    /// A header that is not UTF-8 still has its length, so those after it can be read (SPEC §3:
    /// "whenever those headers could be read"): reading stopped at it, and the error reply to
    /// `[x: 0xFF, route: echo, token: 7]` had neither, so the client waited out its timeout.
    @Test func anErrorReplyKeepsTheRouteAndTokenThatComeAfterABrokenHeader() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect(client: "after-broken")
            var bytes = ByteBuffer(bytes: [3, 1, UInt8(ascii: "x"), 0, 1, 0xFF])
            for (key, value) in [("route", "echo"), ("token", "7")] {
                bytes.writeInteger(UInt8(key.utf8.count))
                bytes.writeString(key)
                bytes.writeInteger(UInt16(value.utf8.count))
                bytes.writeString(value)
            }
            bytes.writeInteger(UInt16(0))
            try await client.sendFrame(.init(fin: true, opcode: .binary, data: bytes))
            let error = try await client.nextMessage()
            #expect(error.headers == ["route": "echo", "token": "7", "error": "BadRequestError"])
        }
    }

    /// A relay that breaks the framing's limits once `from` is in can never be delivered: it
    /// was answered `UnavailableError` ("can't take the message now"), which says to try again.
    @Test func aRelayTooManyHeadersToEverBeDeliveredIsABadRequest() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            _ = try await host.connect(client: "many-headers-recipient")
            let sender = try await host.connect(client: "many-headers-sender")
            var headers: Headers = ["to": "many-headers-recipient", "token": "t"]
            for index in 0..<252 { headers.append("h\(index)", "v") }
            let answer = try await sender.request(Message(headers: headers))
            #expect(answer.headers["error"] == "BadRequestError", "\(answer.headers) \(String(buffer: answer.payload))")
            #expect(try errorBody(answer)["message"]?.contains("'from' added") == true)
        }
    }

    @Test func unknownAndInternalRoutesAreNotFound() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            let unknown = try await client.request(.init(headers: ["route": "missing.route", "token": "a"]))
            #expect(unknown.headers == ["route": "missing.route", "token": "a", "error": "NotFoundError"])
            let internalRoute = try await client.request(.init(headers: ["route": "internal.conduit.status", "token": "b"]))
            #expect(internalRoute.headers["error"] == "NotFoundError")
            #expect(try errorBody(internalRoute)["message"]?.contains("IPC") == true)
        }
    }

    /// Swift compares strings by canonical equivalence: a KELVIN SIGN (U+212A, 3 bytes) equals
    /// `K`. `TAS\u{212A}.run` had the prefix `TASK.`, and its operation, cut at the prefix's
    /// length inside that sign, trapped: one message from a client with the key ended the host.
    @Test func aRouteMatchesByItsBytesNotByUnicodeEquivalence() async throws {
        let yaml = "routes:\n  - route: TASK.*\n    handler: echo\n  - route: Kelvin\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            for route in ["TAS\u{212A}.run", "\u{212A}elvin"] {
                let reply = try await client.request(.init(headers: ["route": route, "token": "t"]))
                #expect(reply.headers == ["route": route, "token": "t", "error": "NotFoundError"])
            }
            for route in ["TASK.run", "Kelvin"] {
                #expect(try await client.request(.init(headers: ["route": route, "token": "t"])).headers["error"] == nil)
            }
        }
    }

    @Test func handlerErrorsBecomeErrorReplies() async throws {
        let yaml = "routes:\n  - route: fail.*\n    handler: thrower\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            let typed = try await client.request(.init(headers: ["route": "fail.now", "type": "UnavailableError", "token": "t"]))
            #expect(typed.headers == ["route": "fail.now", "token": "t", "error": "UnavailableError"])
            #expect(String(buffer: typed.payload) == #"{"err":{"message":"asked to fail","type":"UnavailableError"}}"#, "keys sorted")
            let untyped = try await client.request(.init(headers: ["route": "fail.now", "type": "untyped"]))
            #expect(untyped.headers["error"] == "InternalError")
            let message = try #require(try errorBody(untyped)["message"])
            #expect(!message.contains("hunter2"), "an internal error's text stays in the host's log")
            #expect(message.contains("reference"))
        }
    }

    @Test func exactRoutesBeatPrefixesAndLongestPrefixWins() async throws {
        let yaml = """
            routes:
              - route: a.*
                handler: thrower
              - route: a.b.*
                handler: echo
              - route: a.b.fail
                handler: thrower
            """
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            #expect(try await client.request(.init(headers: ["route": "a.b.c"])).headers["error"] == nil)
            #expect(try await client.request(.init(headers: ["route": "a.b.fail", "type": "X"])).headers["error"] == "X")
            #expect(try await client.request(.init(headers: ["route": "a.x", "type": "Y"])).headers["error"] == "Y")
        }
    }

    @Test func chunkQueueOverTheCapIsRefusedAndTheNextQueueStartsFresh() async throws {
        let yaml = "limits:\n  chunkQueueBytes: 100000\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.send(["more": "true"], payload: [UInt8](repeating: 1, count: 60000))
            try await client.send(["more": "true", "token": "over"], payload: [UInt8](repeating: 2, count: 60000))
            let refused = try await client.nextMessage()
            #expect(refused.headers["error"] == "PayloadTooLargeError")
            #expect(refused.headers["token"] == "over")
            try await client.send([:], payload: [UInt8](repeating: 3, count: 10))
            let reply = try await client.request(.init(headers: ["route": "echo"], payload: [4]))
            #expect(Array(reply.payload.readableBytesView) == [UInt8](repeating: 3, count: 10) + [4])
        }
    }

    /// Both clients put the request's `token` on every part. A part refused (over the queue's
    /// bound) was answered with its error, and the parts after it then completed a request of
    /// their own: the echo of the rest, a second answer for the same token (SPEC §3: drops are
    /// whole). The refused request's later parts and its end go with it now.
    @Test func thePartsAfterARefusedOneGoWithItsRequest() async throws {
        let yaml = "limits:\n  chunkQueueBytes: 100000\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let client = try await host.connect()
            for byte in UInt8(1)...4 { try await client.send(["more": "true", "token": "big"], payload: [UInt8](repeating: byte, count: 40000)) }
            try await client.send(["route": "echo", "token": "big"], payload: Array("end".utf8))
            let refused = try await client.nextMessage()
            #expect(refused.headers["error"] == "PayloadTooLargeError" && refused.headers["token"] == "big")
            // Answered in order: anything the refused request still made comes before it.
            try await client.send(.init(headers: ["route": "echo", "token": "next"], payload: Array("next".utf8)))
            let next = try await client.nextMessage()
            #expect(next.headers["token"] == "next" && String(buffer: next.payload) == "next", "\(next.headers) \(next.payload.readableBytes) bytes")
        }
    }

    /// A part that can't be decoded (a header value that is not UTF-8) was answered with its
    /// error, and the request completed without it: a hole in the middle of the payload.
    @Test func aPartThatCanNotBeDecodedEndsItsRequest() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.send(["more": "true", "token": "holed"], payload: Array("AAA".utf8))
            try await client.send(encoded: try Self.notUTF8(Message(headers: ["more": "true", "token": "holed", "bad": "\u{01}\u{02}"], payload: Array("BBB".utf8))))
            try await client.send(["more": "true", "token": "holed"], payload: Array("CCC".utf8))
            try await client.send(["route": "echo", "token": "holed"], payload: Array("DDD".utf8))
            let refused = try await client.nextMessage()
            #expect(refused.headers["error"] == "BadRequestError" && refused.headers["token"] == "holed")
            // Answered in order: anything the refused request still made comes before it.
            try await client.send(.init(headers: ["route": "echo", "token": "next"], payload: Array("next".utf8)))
            let next = try await client.nextMessage()
            #expect(next.headers["token"] == "next" && String(buffer: next.payload) == "next", "\(next.headers) \(String(buffer: next.payload))")
        }
    }

    /// The message completing a request that can't be decoded: the chunks queued before it
    /// were joined to the next request.
    @Test func queuedChunksGoWithACompletingMessageThatCanNotBeDecoded() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.send(["more": "true"], payload: Array("AAA".utf8))
            try await client.send(encoded: try Self.notUTF8(Message(headers: ["route": "echo", "token": "broken", "bad": "\u{01}\u{02}"], payload: Array("B".utf8))))
            #expect(try await client.nextMessage().headers["error"] == "BadRequestError")
            // Answered in order: anything the refused request still made comes before it.
            try await client.send(.init(headers: ["route": "echo", "token": "next"], payload: Array("next".utf8)))
            let next = try await client.nextMessage()
            #expect(String(buffer: next.payload) == "next", "\(String(buffer: next.payload))")
        }
    }

    /// `message` encoded, its header value `\u{01}\u{02}` made two bytes that are not UTF-8.
    static func notUTF8(_ message: Message) throws -> ByteBuffer {
        var bytes = Array(try message.encoded().readableBytesView)
        let at = try #require(bytes.indices.first { bytes[$0] == 1 && bytes[$0 + 1] == 2 })
        bytes[at] = 0xFF
        bytes[at + 1] = 0xFE
        return ByteBuffer(bytes: bytes)
    }

    @Test func digestAnswersTheSHA1OfThePayloadWithoutDispatching() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            let reply = try await client.request(.init(headers: ["digest": "x", "route": "echo", "token": "d"], payload: Array("abc".utf8)))
            #expect(reply.headers == ["digest": "A9993E364706816ABA3E25717850C26C9CD0D89D", "token": "d"])
            #expect(reply.payload.readableBytes == 0)
        }
    }
}
