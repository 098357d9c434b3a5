import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// Routes invoked over IPC: headers as query parameters, the payload as the body.
@Suite("IPC route invocation", .serialized, .timeLimit(.minutes(1)))
struct InvocationTests {
    @Test func echoOfOneMebibyteComesBackWhole() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            var generator = SystemRandomNumberGenerator()
            let bytes = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let response = try await host.ipc().request(.POST, "/echo?token=42&note=a%20b", body: ByteBuffer(bytes: bytes))
            #expect(response.status == .ok)
            #expect(response.body.readableBytes == 1 << 20)
            #expect(Array(response.body.readableBytesView) == bytes)
            #expect(response.headers["token"] == ["42"])
            #expect(response.headers["note"] == ["a b"])
            #expect(response.headers["route"] == ["echo"])
            #expect(response.headers["key"].isEmpty, "the key is never passed on")
        }
    }

    /// `more=true` marks a part of a split message, which over IPC never comes: echo answered
    /// in kind and the response waited for a last part until the reply timeout (60 s).
    @Test func aQueryMarkingAPartIsRefusedAtOnce() async throws {
        // The old wait ended at this timeout (10 s: the echo's answer must come within it).
        try await TestHost.run(yaml: "limits:\n  ipcReplyTimeoutSeconds: 10\nroutes:\n  - route: echo\n    handler: echo\n", catalog: .ipcTests) { host in
            let part = try await host.ipc().request(.POST, "/echo?token=1&more=true", body: ByteBuffer(string: "abc"))
            #expect(part.status == .badRequest && part.text.contains("more"), "\(part.status) \(part.text)")
            let whole = try await host.ipc().request(.POST, "/echo?token=2&more=false", body: ByteBuffer(string: "abc"))
            #expect(whole.status == .ok && whole.text == "abc")
        }
    }

    @Test func errorsGetTheMatchingStatus() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let missing = try await host.ipc().request(.GET, "/no.such.route?token=9")
            #expect(missing.status == .notFound)
            #expect(missing.headers["error"] == ["NotFoundError"])
            #expect(missing.headers["token"] == ["9"])
            #expect(try missing.decode(ErrorEnvelope.self).err.type == "NotFoundError")
            #expect(try await host.ipc().request(.GET, "/").status == .notFound, "no status page given to this host")
            let badID = try await host.ipc().request(.GET, "/echo?id=not%20an%20id")
            #expect(badID.status == .badRequest)
            #expect(try badID.decode(ErrorEnvelope.self).err.type == "BadRequestError")
            #expect(try await host.ipc().request(.GET, "/echo?id=12345678901234567890").status == .ok)
        }
    }

    /// SwiftNIO's aggregator answered 413 with an empty body: the caller was not told why.
    @Test func aBodyOverTheLimitIsRefusedWith413AndASentence() async throws {
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_CHUNK_QUEUE_BYTES": "65536"]) { host in
            let response = try await host.ipc().request(.POST, "/echo", body: ByteBuffer(repeating: 1, count: 65_537))
            #expect(response.status == .payloadTooLarge)
            let error = try response.decode(ErrorEnvelope.self).err
            #expect(error.type == "PayloadTooLargeError" && error.message.contains("65536"), "\(response.text)")
            let fits = try await host.ipc().request(.POST, "/echo", body: ByteBuffer(repeating: 1, count: 65_536))
            #expect(fits.status == .ok)
        }
    }

    /// A chunked body declares no length: it is refused once more than the limit has arrived,
    /// with the same sentence, and a declared length over it gets no `100 Continue`.
    @Test func aChunkedBodyOverTheLimitIsRefusedWithASentence() async throws {
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_CHUNK_QUEUE_BYTES": "65536"]) { host in
            let chunked = try await RawTCPClient.connect(port: host.ipcPort)
            let key = "Authorization: Bearer \(host.sharedKey)\r\n"
            try await chunked.send("POST /echo HTTP/1.1\r\nHost: x\r\n\(key)Transfer-Encoding: chunked\r\n\r\n")
            // The limit and one byte more: nothing sent is left unread when the host closes.
            for _ in 0..<2 { try await chunked.send("8000\r\n" + String(repeating: "a", count: 0x8000) + "\r\n") }
            try await chunked.send("1\r\na\r\n")
            let refused = String(buffer: try await chunked.readUntilClosed())
            #expect(refused.hasPrefix("HTTP/1.1 413") && refused.contains("PayloadTooLargeError"), "\(refused.prefix(300))")
            let expecting = try await RawTCPClient.connect(port: host.ipcPort)
            try await expecting.send("POST /echo HTTP/1.1\r\nHost: x\r\n\(key)Content-Length: 65537\r\nExpect: 100-continue\r\n\r\n")
            let told = String(buffer: try await expecting.readUntilClosed())
            #expect(told.hasPrefix("HTTP/1.1 413") && told.contains("declares 65537 bytes"), "\(told.prefix(300))")
        }
    }

    /// The parts of a reply are joined in memory the host's budget gives: a handler that sends
    /// parts without end gets its caller a 503, not the host's memory.
    @Test func aReplyInPartsIsJoinedWithinTheBudget() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\nroutes:\n  - route: flood\n    handler: flood\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let budget = host.host.directory.budget
            let part = ByteBuffer(repeating: 7, count: 60_000)
            let fits = try await host.ipc().request(.POST, "/flood?count=8", body: part)
            #expect(fits.status == .ok && fits.body.readableBytes == 8 * 60_000)
            let endless = try await host.ipc().request(.POST, "/flood?count=40", body: part)
            #expect(endless.status == .serviceUnavailable && endless.text.contains("budget"), "\(endless.status) \(endless.body.readableBytes) bytes")
            #expect(budget.snapshot.dropped["host-budget"] == 1)
            try await waitUntil { budget.usedBytes == 0 }
            let after = try await host.ipc().request(.POST, "/flood?count=2", body: part)
            #expect(after.status == .ok && after.body.readableBytes == 2 * 60_000)
        }
    }

    @Test func aReplyInPartsIsJoinedAndASilentHandlerTimesOut() async throws {
        // 3 s, not 0.2: the parts' reply must come within it on a loaded machine too.
        let yaml = "limits:\n  ipcReplyTimeoutSeconds: 3\nroutes:\n  - route: parts\n    handler: parts\n  - route: silent\n    handler: silent\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let body = ByteBuffer(bytes: (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
            let joined = try await host.ipc().request(.POST, "/parts?token=p", body: body)
            #expect(joined.status == .ok)
            #expect(joined.body == body)
            #expect(joined.headers["parts"] == ["3"])
            #expect(joined.headers["more"].isEmpty)

            let silent = try await host.ipc().request(.GET, "/silent?token=s")
            #expect(silent.status == .gatewayTimeout)
            #expect(try silent.decode(ErrorEnvelope.self).err.type == "TimeoutError")
            let after = try await host.ipc().request(.GET, "/parts", body: ByteBuffer(string: "abc"))
            #expect(after.text == "abc", "the host answers the next request normally")
        }
    }

    /// SPEC §8: a cancel stops "that client's" request: one invoked over IPC for an id is
    /// cancelled by a `cancel` on the id's socket. It was acknowledged and did nothing: IPC
    /// invocations could not be cancelled at all. Then the socket got the `CancelledError`, an
    /// answer to a request it never sent, and the caller waited for its 504; the caller is
    /// answered now. (Neither the 504 nor the caller's half-close cancels: a handler may go on
    /// for the id, as an AI stream does, and a caller that shut down its side may still read
    /// its answer.)
    @Test func aCancelOnTheIdsSocketStopsARequestInvokedOverIPCAndAnswersItsCaller() async throws {
        let yaml = "limits:\n  ipcReplyTimeoutSeconds: 30\nroutes:\n  - route: silent\n    handler: silent\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let invoked = Task { try await host.ipc().request(.POST, "/silent?token=r1&id=ipc-and-socket") }
            defer { invoked.cancel() }
            try await waitUntil { SilentHandler.received.withLock { $0.contains("ipc-and-socket") } }
            let socket = try await host.connect(client: "ipc-and-socket")
            let sent = ContinuousClock.now
            try await socket.send(["cancel": "r1"])
            let answer = try await invoked.value
            #expect(sent.duration(to: .now) < .seconds(20), "answered at the cancel, not at the reply timeout")
            #expect(try answer.decode(ErrorEnvelope.self).err.type == "CancelledError", "\(answer.status) \(answer.text)")
            try await waitUntil { SilentHandler.cancelled.withLock { $0.contains("ipc-and-socket") } }
            // The socket is not answered for it (the handler's push aside): the next answer it
            // gets is to its own request.
            try await socket.send(["route": "nowhere", "token": "own"])
            let next = try await socket.nextMessage { $0.headers["token"] != nil }
            #expect(next.headers["token"] == "own", "\(next.headers)")
            try await socket.close()
        }
    }

    /// An error that ends a reply's parts is the answer alone, as over the socket: the parts
    /// before it were joined in front of its JSON, which no caller could read.
    @Test func anErrorAfterPartsIsAnsweredAlone() async throws {
        let yaml = "routes:\n  - route: parts\n    handler: parts\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let failed = try await host.ipc().request(.POST, "/parts?token=f&end=fail", body: ByteBuffer(repeating: 7, count: 30))
            #expect(failed.status == .internalServerError)
            #expect(try failed.decode(ErrorEnvelope.self).err.type == "InternalError", "\(failed.text)")
            try await waitUntil { host.host.directory.budget.usedBytes == 0 }
        }
    }
}
