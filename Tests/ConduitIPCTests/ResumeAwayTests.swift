@testable import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// What is sent to a resuming id while it has no socket (SPEC §9): the id's push buffer holds
/// the newest, and what it can't hold goes into the resume window, numbered, rather than being
/// dropped. Dropped, a message never had a position: the client was never told of it, and
/// exactly-once held only while the push buffer's bound (4,096 messages) was not reached.
@Suite("Resume: messages sent while away", .serialized, .timeLimit(.minutes(2)))
struct ResumeAwayTests {
    /// Reads `count` messages and returns their `n` and `pos`.
    static func read(_ count: Int, from socket: TestWebSocketClient) async throws -> [(n: Int, pos: UInt64)] {
        var read: [(n: Int, pos: UInt64)] = []
        for _ in 0..<count {
            let message = try await socket.nextMessage()
            read.append((Int(message.headers["n"] ?? "") ?? -1, UInt64(message.headers["pos"] ?? "") ?? 0))
        }
        return read
    }

    /// Connects `id` resuming, then closes its socket; the epoch to resume.
    static func resumedAndGone(_ host: TestHost, id: String) async throws -> String {
        let (socket, greeting) = try await ResumeTests.resume(host, id: id)
        try await socket.close()
        try await socket.waitUntilClosed()
        try await waitUntil { host.client(id)?.connected == false }
        return try #require(greeting.headers["epoch"])
    }

    /// Away, more pushes than the push buffer holds but fewer bytes than the window: all of them
    /// arrive, once, in order, numbered without a gap. Also while a handshake for the id is in
    /// progress (one that is then abandoned).
    @Test(arguments: [false, true]) func pushesPastThePushBufferWaitInTheWindow(duringAHandshake: Bool) async throws {
        let yaml = "limits:\n  pushBufferMessages: 64\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("a1")!
            let epoch = try await Self.resumedAndGone(host, id: "a1")
            if duringAHandshake { #expect(host.host.directory.handshakeAccepted(id)) }
            let total = 500
            for n in 0..<total { host.host.directory.push(numberedPush(n), to: id) }
            if duringAHandshake { host.host.directory.handshakeAbandoned(id) }

            let (again, resumed) = try await ResumeTests.resume(host, id: "a1", received: 0, epoch: epoch)
            #expect(resumed.headers["lost"] == "0" && resumed.headers["replayed"] == "\(total - 64)", "\(resumed.headers)")
            let read = try await Self.read(total, from: again)
            #expect(read.map(\.n) == Array(0..<total))
            #expect(read.map(\.pos) == Array(1...UInt64(total)))
            #expect(host.client("a1")?.dropped == 0)
        }
    }

    /// Away, more than the window holds: the oldest are released, and the client is told
    /// exactly how many it will never see; what follows is every later push, in order.
    @Test func pushesPastTheWindowTooAreCountedAsLost() async throws {
        let yaml = "limits:\n  pushBufferMessages: 16\n  resumeWindowBytes: 65536\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("a2")!
            let epoch = try await Self.resumedAndGone(host, id: "a2")
            let total = 300
            for n in 0..<total { host.host.directory.push(numberedPush(n, payload: patternedBytes(n, count: 1000)), to: id) }

            let (again, resumed) = try await ResumeTests.resume(host, id: "a2", received: 0, epoch: epoch)
            let lost = try #require(Int(resumed.headers["lost"] ?? ""))
            let replayed = try #require(Int(resumed.headers["replayed"] ?? ""))
            #expect(lost > 0 && lost + replayed + 16 == total, "\(resumed.headers)")
            let read = try await Self.read(total - lost, from: again)
            #expect(read.map(\.n) == Array(lost..<total))
            #expect(read.map(\.pos) == Array(UInt64(lost + 1)...UInt64(total)))
            #expect(host.client("a2")?.resume?.lost == lost)
        }
    }

    /// A resuming socket whose outbound queue is full is closed (the client resumes), as under
    /// `outboundPolicy: close`, rather than dropping its oldest queued message: dropped, it had
    /// no position, and the client, reading on, never learned of it.
    @Test func aFullQueueClosesAResumingSocketAndTheClientResumesWithEveryMessage() async throws {
        let yaml = """
            limits:
              outboundQueueBytes: 65536
              outboundQueueMessages: 32
              pushBufferMessages: 32
              resumeWindowBytes: 16777216
            routes:
              - route: echo
                handler: echo
            """
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("a3")!
            let path = host.path(client: "a3") + "&resume=0"
            let socket = try await TestWebSocketClient.connect(port: host.port, path: path, receiveBufferBytes: 4096)
            let greeting = try await socket.nextMessage()
            let epoch = try #require(greeting.headers["epoch"])
            try await socket.pauseReading()
            // 10 MB: more than the socket buffers take (3 MB was not), less than the window.
            let total = 10_000
            let payload = { (n: Int) in patternedBytes(n, count: 1000) }
            for n in 0..<total { host.host.directory.push(numberedPush(n, payload: payload(n)), to: id) }
            try await waitUntil { host.client("a3")?.connected == false }
            // What reached this socket before it closed.
            try await socket.resumeReading()
            var received: [(n: Int, pos: UInt64)] = []
            while true {
                do {
                    let message = try await socket.nextMessage()
                    received.append((Int(message.headers["n"] ?? "") ?? -1, UInt64(message.headers["pos"] ?? "") ?? 0))
                } catch TestClientError.closedByServer, TestClientError.closed { break }
            }
            #expect(received.map(\.n) == Array(0..<received.count))
            let (again, resumed) = try await ResumeTests.resume(host, id: "a3", received: UInt64(received.count), epoch: epoch)
            #expect(resumed.headers["lost"] == "0", "\(resumed.headers)")
            let rest = try await Self.read(total - received.count, from: again)
            #expect(rest.map(\.n) == Array(received.count..<total))
            #expect(rest.map(\.pos) == Array(UInt64(received.count + 1)...UInt64(total)))
            #expect(host.client("a3")?.outboundDropped == 0 && host.client("a3")?.dropped == 0)
        }
    }

    /// An events stream (the fallback) that can't take more ends, as a resuming socket is
    /// closed: the id's buffer behind it dropped its oldest, unnumbered, and the client never
    /// learned of them.
    @Test func aFullEventsStreamEndsAndTheClientResumesWithEveryMessage() async throws {
        let yaml = "limits:\n  pushBufferMessages: 32\n  resumeWindowBytes: 16777216\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("a4")!
            let raw = try await RawTCPClient.connect(port: host.ipcPort, receiveBufferBytes: 4096)
            try await raw.pauseReading()
            try await raw.send("GET /internal.conduit.events?id=a4&resume=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\n\r\n")
            try await waitUntil { host.client("a4")?.streaming == true }
            let epoch = try #require(host.client("a4")?.resume?.epoch)
            // 10 MB: more than the stream's socket buffers take, less than the window.
            let total = 10_000
            for n in 0..<total { host.host.directory.push(numberedPush(n, payload: patternedBytes(n, count: 1000)), to: id) }
            #expect(host.client("a4")?.streaming == false, "the stream ended")
            try? await raw.close()  // unless the host closed it with the stream

            let (socket, resumed) = try await ResumeTests.resume(host, id: "a4", received: 0, epoch: epoch)
            #expect(resumed.headers["lost"] == "0", "\(resumed.headers)")
            let read = try await Self.read(total, from: socket)
            #expect(read.map(\.n) == Array(0..<total))
            #expect(read.map(\.pos) == Array(1...UInt64(total)))
            #expect(host.client("a4")?.dropped == 0)
        }
    }
}
