import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// The host adds fields to what it sends: `route` and the request's `token` to a reply, and
/// on a resuming id `pos` to everything (and `ack` when one is due). A message must have room
/// for them within the framing's 255 headers: one that had none was dropped as it was written,
/// after it had been accepted (a push answered `buffered`, a reply the client waited for).
@Suite("Room for the host's fields", .serialized, .timeLimit(.minutes(1)))
struct HeaderRoomTests {
    static let yaml = "routes:\n  - route: echo\n    handler: echo\n  - route: wide\n    handler: wide\n"

    /// `count` headers of the handler's own, then `route` and `token`: up to 254 in all arrive,
    /// past that the client is told why (the host keeps one header for `pos`).
    @Test func aReplyWithoutRoomIsAnErrorNotSilence() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            let socket = try await host.connect(client: "wide-plain")
            let fits = try await socket.request(Message(headers: ["route": "wide", "token": "1", "count": "252"]))
            #expect(fits.headers.count == 254 && fits.headers["error"] == nil && fits.headers["w251"] == "v")
            for count in [253, 254, 300] {
                let refused = try await socket.request(Message(headers: ["route": "wide", "token": "\(count)", "count": "\(count)"]))
                #expect(refused.headers["error"] == "InternalError", "\(count) headers of its own")
                // Why, in terms the handler's author knows: the host's fields counted, and the room kept.
                #expect(
                    String(buffer: refused.payload).contains(
                        "the handler's reply with the request's route and correlation field exceeds the framing limits: \(count + 2) headers; at most 254 fit in one message beside the 'pos' added on its way out"),
                    "\(String(buffer: refused.payload))")
            }
        }
    }

    @Test func aReplyWithoutRoomForPosIsAnErrorOnAResumingConnection() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            let (socket, _) = try await ResumeTests.resume(host, id: "wide-resume")
            let refused = try await socket.request(Message(headers: ["route": "wide", "token": "a", "count": "253", "pos": "1"]))
            #expect(refused.headers["error"] == "InternalError" && refused.headers["pos"] == "1")
            let fits = try await socket.request(Message(headers: ["route": "wide", "token": "b", "count": "252", "pos": "2"]))
            #expect(fits.headers.count == 255 && fits.headers["error"] == nil && fits.headers["pos"] == "2")
        }
    }

    /// The acknowledgement due with the 32nd reply goes alone when that reply has room for
    /// `pos` only: riding along, it made the reply too large to encode, and the reply was lost.
    @Test func anAcknowledgementRidesOnlyOnAReplyWithRoomForIt() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            let (socket, _) = try await ResumeTests.resume(host, id: "wide-ack")
            var requests = (1...31).map { Message(headers: ["route": "echo", "token": "\($0)", "pos": "\($0)"]) }
            // 255 headers on the wire: its echo has 254 of its own, and room for `pos` only.
            let wide = Headers([("route", "echo"), ("token", "32"), ("pos", "32")] + (0..<252).map { ("e\($0)", "v") })
            requests.append(Message(headers: wide))
            // All in one write, so the 200 ms timer can't acknowledge part of them first.
            try await socket.send(together: requests)
            var replies: [Message] = []
            for _ in 1...32 { replies.append(try await socket.nextMessage(route: "echo")) }
            #expect(replies.map { $0.headers.values(of: "pos") } == (1...32).map { ["\($0)"] })
            #expect(replies.last?.headers.count == 255 && replies.last?.headers["ack"] == nil)
            #expect(try await socket.nextMessage(route: "conduit.ack").headers["ack"] == "32")
        }
    }

    /// A push is refused before it is accepted when it has no room for `pos`, whether its id
    /// resumes or not, and whether the id has a socket now or not: one buffered for an absent
    /// id was answered `buffered`, then dropped when the id came back resuming.
    @Test func aPushWithoutRoomForPosIsRefusedBeforeItIsAccepted() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            let id = ClientID("wide-push")!
            let full = Message(headers: Headers((0..<WireLimits.maxHeaders).map { ("h\($0)", "v") }))
            let roomy = Message(headers: Headers((0..<(WireLimits.maxHeaders - 1)).map { ("h\($0)", "v") }))
            let (socket, greeting) = try await ResumeTests.resume(host, id: "wide-push")
            let epoch = try #require(greeting.headers["epoch"])
            #expect(host.host.directory.push(full, to: id) == .dropped(.unencodable))
            try await socket.close()
            try await waitUntil { host.client("wide-push")?.connected == false }
            #expect(host.host.directory.push(full, to: id) == .dropped(.unencodable))
            #expect(host.host.directory.push(roomy, to: id) == .buffered)
            let (again, resumed) = try await ResumeTests.resume(host, id: "wide-push", epoch: epoch)
            #expect(resumed.headers["reset"] == nil)
            let arrived = try await again.nextMessage()
            #expect(arrived.headers.count == WireLimits.maxHeaders && arrived.headers["pos"] == "1")
            let plain = try await host.connect(client: "wide-push-plain")
            #expect(host.host.directory.push(full, to: ClientID("wide-push-plain")!) == .dropped(.unencodable))
            try await plain.close()
        }
    }

    /// The parts of a payload too large for one message each carry `more` but the last: a
    /// message split has room for it too, or it is refused when pushed or replied.
    @Test func aLargeMessageKeepsRoomForMoreOnItsParts() async throws {
        try await TestHost.run(yaml: Self.yaml, catalog: .ipcTests) { host in
            let id = ClientID("wide-parts")!
            let large = ByteBuffer(repeating: 7, count: WireLimits.maxPayloadBytes + 100)
            let (socket, _) = try await ResumeTests.resume(host, id: "wide-parts")
            let crowded = Message(headers: Headers((0..<(WireLimits.maxHeaders - 1)).map { ("h\($0)", "v") }), payload: large)
            #expect(host.host.directory.push(crowded, to: id) == .dropped(.unencodable))
            let roomy = Message(headers: Headers((0..<(WireLimits.maxHeaders - 2)).map { ("h\($0)", "v") }), payload: large)
            #expect(host.host.directory.push(roomy, to: id).isAccepted)
            let parts = try await socket.nextMessages(2)
            #expect(parts.map(\.headers.count) == [WireLimits.maxHeaders, WireLimits.maxHeaders - 1])
            #expect(parts.map { $0.headers["pos"] } == ["1", "2"] && parts.map(\.headers.hasMore) == [true, false])

            // Requests in two parts, a client position each.
            func request(token: String, count: Int, from position: Int) async throws {
                for (offset, var part) in Message(headers: ["route": "wide", "token": token, "count": "\(count)"], payload: large).split().enumerated() {
                    part.headers.append("pos", "\(position + offset)")
                    try await socket.send(part)
                }
            }
            try await request(token: "a", count: 252, from: 1)
            let refused = try await socket.nextMessage(route: "wide")
            #expect(refused.headers["error"] == "InternalError" && refused.headers["pos"] == "3")
            try await request(token: "b", count: 251, from: 3)
            let replyParts = [try await socket.nextMessage(route: "wide"), try await socket.nextMessage(route: "wide")]
            #expect(replyParts.map { $0.headers["error"] } == [nil, nil] && replyParts.map { $0.headers["pos"] } == ["4", "5"])
            #expect(replyParts.map(\.headers.count) == [WireLimits.maxHeaders, WireLimits.maxHeaders - 1])
        }
    }
}
