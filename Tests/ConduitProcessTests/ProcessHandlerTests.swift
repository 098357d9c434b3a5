import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

@Suite("Process handler over a real socket", .serialized, .timeLimit(.minutes(1)))
struct ProcessHandlerTests {
    @Test func replyCarriesRouteAndTokenAndNoChildHeaders() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect()
            // A client's own x-request must not reach the child or confuse the matching.
            let reply = try await client.request(Message(headers: ["route": "example.upper", "token": "7", "x-request": "999"], payload: Array("hello".utf8)))
            #expect(String(buffer: reply.payload) == "HELLO")
            #expect(reply.headers["route"] == "example.upper")
            #expect(reply.headers["token"] == "7")
            #expect(reply.headers["error"] == nil)
            #expect(!reply.headers.contains("x-request") && !reply.headers.contains("x-client"))
        }
    }

    @Test func childrenInheritNoneOfTheHostsOwnSettings() async throws {
        // Stands for CONDUIT_SHARED_KEY and the rest: set in the host's environment, where a
        // child would have inherited it.
        setenv("CONDUIT_TEST_SECRET", "do-not-pass-on", 1)
        defer { unsetenv("CONDUIT_TEST_SECRET") }
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect(client: "env-reader")
            let secret = try await client.request(Message(headers: ["route": "fixture.env", "token": "1"], payload: Array("CONDUIT_TEST_SECRET".utf8)))
            #expect(secret.headers["error"] == nil)
            #expect(String(buffer: secret.payload) == "", "the host's CONDUIT_* variables stay with the host")
            let path = try await client.request(Message(headers: ["route": "fixture.env", "token": "2"], payload: Array("PATH".utf8)))
            #expect(!String(buffer: path.payload).isEmpty, "the rest of the environment is inherited")
        }
    }

    /// Every part to the child repeats the request's headers: 900 KB of headers on a payload
    /// of 20 parts held 18 MB for a request the budget charged 2 MB (1 MB of headers on 16 MiB
    /// came to 258 MB). Past 4 MiB of repeated headers the request is refused; the same payload
    /// with small headers passes.
    @Test func headersRepeatedInEveryPartAreBounded() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect(client: "wide-headers")
            let chunk = [UInt8](repeating: 7, count: 60_000)
            let wide = (0..<15).map { ("h\($0)", String(repeating: "v", count: 60_000)) }
            for _ in 0..<20 { try await client.send([:], payload: chunk) }
            let refused = try await client.request(Message(headers: Headers([("route", "example.echo"), ("token", "wide")] + wide)))
            #expect(refused.headers["error"] == "PayloadTooLargeError", "\(refused.headers["error"] ?? "no error")")
            for _ in 0..<20 { try await client.send([:], payload: chunk) }
            let echoed = try await client.request(Message(headers: ["route": "example.echo", "token": "narrow"]))
            #expect(echoed.headers["error"] == nil, "\(echoed.headers)")
        }
    }

    @Test func childSeesTheClientIdAndItsOwnHeaders() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect(client: "alice")
            // The host's own x-client, x-request and x-push-to are its alone, whatever their case:
            // a child that matches names without case took the client's first.
            let reply = try await client.request(Message(
                headers: ["route": "example.echo", "token": "1", "colour": "blue", "X-Client": "victim", "X-Request": "1"], payload: Array("hi".utf8)))
            #expect(reply.headers["colour"] == "blue")
            #expect(!reply.headers.contains("X-Client") && !reply.headers.contains("X-Request"), "\(reply.headers)")
            #expect(String(buffer: reply.payload) == "hi")
        }
    }

    @Test func childPushesToAnotherClient() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let alice = try await host.connect(client: "alice")
            let bob = try await host.connect(client: "bob")
            let reply = try await alice.request(Message(headers: ["route": "example.push", "token": "p", "target": "bob"], payload: Array("psst".utf8)))
            #expect(String(buffer: reply.payload) == #"{"data":{"pushed":true}}"#)
            let pushed = try await bob.nextMessage()
            #expect(pushed.headers == ["route": "example.pushed", "from": "alice"])
            #expect(String(buffer: pushed.payload) == "psst")
        }
    }

    @Test func pushToAnAbsentClientIsBufferedUntilItConnects() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let alice = try await host.connect(client: "alice")
            _ = try await alice.request(Message(headers: ["route": "example.push", "target": "carol"], payload: Array("later".utf8)))
            let carol = try await host.connect(client: "carol")
            #expect(String(buffer: try await carol.nextMessage().payload) == "later")
        }
    }

    @Test func payloadsOverOneFrameTravelAsPartsBothWays() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect()
            let bytes = (0..<(1 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            for part in Message(headers: ["route": "example.echo", "token": "big"], payload: bytes).split() {
                try await client.send(part)
            }
            let reply = try await client.nextJoinedMessage()
            #expect(reply.headers["token"] == "big")
            #expect(reply.payload == ByteBuffer(bytes: bytes))
        }
    }

    @Test func childErrorBecomesAnErrorReply() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect()
            let reply = try await client.request(Message(headers: ["route": "example.nope", "token": "e"]))
            #expect(reply.headers["error"] == "NotFoundError")
            #expect(reply.headers["token"] == "e")
            #expect(String(buffer: reply.payload).contains("example has no action 'nope'"))
        }
    }

    @Test func manyRequestsInFlightAreAllAnswered() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect()
            for index in 0..<300 {
                try await client.send(["route": "example.upper", "token": "\(index)"], payload: Array("m\(index)".utf8))
            }
            for index in 0..<300 {
                let reply = try await client.nextMessage()
                #expect(reply.headers["token"] == "\(index)")
                #expect(String(buffer: reply.payload) == "M\(index)")
            }
        }
    }
}
