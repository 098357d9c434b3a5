import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

@Suite("Echo over a real socket", .serialized, .timeLimit(.minutes(1)))
struct EchoTests {
    @Test func echoKeepsHeadersRouteAndToken() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            let reply = try await client.request(Message(headers: ["route": "echo", "token": "42", "x": "ключ"], payload: Array("hello".utf8)))
            #expect(reply.headers == ["route": "echo", "token": "42", "x": "ключ"])
            #expect(String(buffer: reply.payload) == "hello")
        }
    }

    @Test func seqIsASynonymOfToken() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            let reply = try await client.request(Message(headers: ["route": "nope", "seq": "7"]))
            #expect(reply.headers["seq"] == "7")
            #expect(reply.headers["error"] == "NotFoundError")
        }
    }

    @Test func largePayloadIsChunkedBothWays() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            for part in Message(headers: ["route": "echo", "token": "big"], payload: bytes).split() {
                try await client.send(part)
            }
            let reply = try await client.nextJoinedMessage()
            #expect(reply.payload == ByteBuffer(bytes: bytes))
            #expect(reply.headers["token"] == "big")
        }
    }

    @Test func routelessMessagesAreChunksOfTheNextRequest() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            try await client.send([:], payload: Array("ab".utf8))
            try await client.send(["more": "true", "route": "ignored"], payload: Array("cd".utf8))
            let reply = try await client.request(Message(headers: ["route": "echo"], payload: Array("ef".utf8)))
            #expect(String(buffer: reply.payload) == "abcdef")
        }
    }

    @Test func manyMessagesInFlightKeepTheirOrder() async throws {
        try await TestHost.run(catalog: .hostTests) { host in
            let client = try await host.connect()
            for index in 0..<500 {
                try await client.send(["route": "echo", "token": "\(index)"])
            }
            for index in 0..<500 {
                #expect(try await client.nextMessage().headers["token"] == "\(index)")
            }
        }
    }
}
