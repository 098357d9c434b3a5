import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Synchronization
import Testing

/// Connecting, sending, receiving and `request` against a real host with the echo handler.
@Suite("Client: connect, send, request", .serialized, .timeLimit(.minutes(1)))
struct ConnectTests {
    /// A server that takes the connection and never answers the upgrade held `connect` (and a
    /// reconnect loop) forever: in a loaded full run a client once never came back after a pause.
    @Test func anAttemptThatGetsNoAnswerToItsUpgradeFailsInTime() async throws {
        let silent = try await SilentTCPServer.start()
        let conduit = Conduit(
            id: "stalled", address: HostAddress(port: silent.port, ipcPort: nil, sharedKey: "stalled-key"),
            backoff: Backoff(retries: 0, attemptTimeout: .milliseconds(300)))
        let started = ContinuousClock.now
        await #expect(throws: ConduitClientError.self) { try await conduit.connect() }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(!conduit.isOpen)
        conduit.close()
        try await silent.stop()
    }

    @Test func connectsSendsAndReceivesTheEcho() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "1")
            let recorder = Recorder(conduit)
            #expect(!conduit.isOpen)
            #expect(try conduit.send(["route": "echo"]) == false, "not open yet")
            try await conduit.connect()
            try await recorder.waitFor { $0.isOpen }
            #expect(conduit.isOpen)
            #expect(try conduit.send(["route": "echo", "token": "7"], payload: ByteBuffer(string: "hello")))
            try await recorder.waitForMessages(1)
            let echoed = recorder.messages[0]
            #expect(echoed.headers["token"] == "7")
            #expect(String(buffer: echoed.payload) == "hello")
            #expect(host.client("1")?.connected == true)
            conduit.close()
        }
    }

    /// Another client with the key relayed a message with the token of a request in flight
    /// (tokens were predictable, `r.1`, `r.2`, …), and `request` returned it as the reply. A relay
    /// (the host's `from`, no `route`) is never a reply; it reaches the receive handler.
    @Test func aRelayCarryingARequestsTokenIsNotItsReply() async throws {
        let yaml = "routes:\n  - route: silent\n    handler: silent\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .clientTests) { host in
            let conduit = host.client(id: "victim")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            // In flight until the close below: timed out first, it was cancelled, and the silent
            // handler's notice of the cancel reached the receive handler before the relay.
            let asked = Task { try await conduit.request(route: "silent", timeout: .seconds(600)) }
            try await waitUntil { SilentHandler.tokens.withLock { $0["victim"] } != nil }
            let token = try #require(SilentHandler.tokens.withLock { $0["victim"] })
            let other = try await host.connect(client: "forger")
            try await other.send(["to": "victim", "token": token], payload: Array("forged".utf8))
            try await recorder.waitForMessages(1)
            #expect(recorder.messages[0].headers["from"] == "forger", "\(recorder.messages.map(\.headers))")
            conduit.close()
            await #expect(throws: ConduitClientError.self) { _ = try await asked.value }
        }
    }

    @Test func requestCorrelatesRepliesByToken() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "2")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            // Concurrent requests each get their own reply.
            let replies = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for n in 0..<20 {
                    group.addTask {
                        let reply = try await conduit.request(route: "echo", headers: ["n": "\(n)"], payload: ByteBuffer(string: "payload \(n)"))
                        #expect(reply.headers["n"] == "\(n)")
                        #expect(reply.headers.route == "echo")
                        return (n, String(buffer: reply.payload))
                    }
                }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            #expect(replies == Dictionary(uniqueKeysWithValues: (0..<20).map { ($0, "payload \($0)") }))
            #expect(recorder.messages.isEmpty, "replies to requests don't go to the receive handler")
            conduit.close()
        }
    }

    @Test func anErrorReplyIsThrownWithItsTypeAndMessage() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "3")
            try await conduit.connect()
            let error = await #expect(throws: ConduitReplyError.self) {
                try await conduit.request(route: "no.such.route")
            }
            #expect(error?.type == "NotFoundError")
            #expect(error?.message.contains("no.such.route") == true)
            let internalRoute = await #expect(throws: ConduitReplyError.self) {
                try await conduit.request(route: "internal.conduit.status")
            }
            #expect(internalRoute?.type == "NotFoundError", "internal routes are IPC-only")
            // The socket stays usable after error replies.
            #expect(String(buffer: try await conduit.request(route: "echo", payload: ByteBuffer(string: "still")).payload) == "still")
            conduit.close()
        }
    }

    @Test func aRequestWithoutAReplyTimesOut() async throws {
        try await TestHost.run(yaml: TestHost.clientYAML, catalog: .clientTests) { host in
            let conduit = host.client(id: "9")
            try await conduit.connect()
            let clock = ContinuousClock()
            let started = clock.now
            let error = await #expect(throws: ConduitClientError.self) {
                try await conduit.request(route: "silent", timeout: .milliseconds(300))
            }
            #expect(error?.code == .timedOut)
            #expect(clock.now - started >= .milliseconds(300))
            // A cancelled request ends at once with CancellationError.
            let waiting = Task { try await conduit.request(route: "silent", timeout: .seconds(30)) }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            conduit.close()
        }
    }

    @Test func cancellingTheCallersTaskCancelsTheRequestOnTheHost() async throws {
        try await TestHost.run(yaml: TestHost.clientYAML, catalog: .clientTests) { host in
            let conduit = host.client(id: "canceller")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let waiting = Task { try await conduit.request(route: "silent", timeout: .seconds(30)) }
            try await waitUntil { SilentHandler.received.withLock { $0.contains("canceller") } }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            try await waitUntil { SilentHandler.cancelled.withLock { $0.contains("canceller") } }
            // The host's CancelledError answer is the client's own business: not a message for the app.
            _ = try await conduit.request(route: "echo")
            #expect(!recorder.messages.contains { $0.headers["error"] != nil })
            conduit.close()
        }
    }

    /// A request that timed out ran on on the host with nobody waiting for its reply (or,
    /// kept while the socket was down, ran after the reconnect): it is cancelled there too.
    @Test func aRequestThatTimesOutIsCancelledOnTheHost() async throws {
        try await TestHost.run(yaml: TestHost.clientYAML, catalog: .clientTests) { host in
            let conduit = host.client(id: "timed-out")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let timedOut = await #expect(throws: ConduitClientError.self) { try await conduit.request(route: "silent", timeout: .milliseconds(300)) }
            #expect(timedOut?.code == .timedOut)
            try await waitUntil { SilentHandler.cancelled.withLock { $0.contains("timed-out") } }
            _ = try await conduit.request(route: "echo")
            #expect(!recorder.messages.contains { $0.headers["error"] != nil }, "the host's CancelledError is not the app's")
            conduit.close()
        }
    }

    /// A payload the host's chunk queue refuses part-way fails the request, and the parts
    /// after the refused one make requests of their own with its token: their answers (more
    /// refusals, the reply to a cut-off payload) reached the app as pushes.
    @Test func theAnswersToAPayloadRefusedPartWayAreNotTheApps() async throws {
        let yaml = "limits:\n  chunkQueueBytes: 100000\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .clientTests) { host in
            let conduit = host.client(id: "too-large")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            // Seven parts of up to 64 KiB: every second one passes the queue's limit, and the last
            // completes the one before it (three refusals, then a reply to two parts).
            let refused = await #expect(throws: ConduitReplyError.self) {
                try await conduit.request(route: "echo", payload: ByteBuffer(repeating: 1, count: 400_000))
            }
            #expect(refused?.type == "PayloadTooLargeError")
            // Echoed after the refused payload's other answers: once it is in, they came before it.
            #expect(try conduit.send(["route": "echo"], payload: ByteBuffer(string: "after")))
            try await recorder.waitFor { if case .message(let message) = $0 { String(buffer: message.payload) == "after" } else { false } }
            #expect(recorder.messages.map { String(String(buffer: $0.payload).prefix(80)) } == ["after"], "only the echo reached the receive handler")
            #expect(recorder.count { if case .message = $0 { true } else { false } } == 1, "and the events")
            conduit.close()
        }
    }

    @Test func aOneMebibytePayloadIsSplitAndJoined() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "4")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let bytes = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255) }
            let reply = try await conduit.request(route: "echo", payload: ByteBuffer(bytes: bytes), timeout: .seconds(30))
            #expect(reply.payload.readableBytes == 1 << 20)
            #expect(Array(reply.payload.readableBytesView) == bytes)
            #expect(!reply.headers.hasMore)
            // The same through send and the receive handler.
            #expect(try conduit.send(["route": "echo"], payload: ByteBuffer(bytes: bytes)))
            try await recorder.waitForMessages(1)
            #expect(recorder.messages.count == 1, "parts arrive joined as one message")
            #expect(Array(recorder.messages[0].payload.readableBytesView) == bytes)
            conduit.close()
        }
    }

    @Test func findsTheHostThroughItsRuntimeFile() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let address = try HostAddress(runtimeFile: host.endpoints.runtimeFile)
            #expect(address.port == host.port && address.ipcPort == host.endpoints.ipcPort && address.sharedKey == host.sharedKey)
            let conduit = Conduit(id: "5", address: HostAddress(ipcPort: address.ipcPort, sharedKey: address.sharedKey))
            try await conduit.connect()
            #expect(conduit.isOpen, "the port came from IPC status")
            #expect(try await conduit.ipc?.status().port == host.port)
            conduit.close()
        }
    }

    @Test func badInputIsRefusedClearly() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let wrongKey = host.client(id: "6", ipc: false, key: "not-the-key")
            let refused = await #expect(throws: ConduitClientError.self) { try await wrongKey.connect() }
            #expect(refused?.code == .connectFailed)

            let badID = host.client(id: "not a valid id!", ipc: false)
            await #expect(throws: ConduitClientError.self) { try await badID.connect() }

            let noPort = Conduit(id: "7", address: HostAddress(sharedKey: host.sharedKey))
            let unknown = await #expect(throws: ConduitClientError.self) { try await noPort.connect() }
            #expect(unknown?.code == .connectFailed)
            let notConnected = await #expect(throws: ConduitClientError.self) { try await noPort.request(route: "echo") }
            #expect(notConnected?.code == .notConnected)

            let conduit = host.client(id: "8")
            try await conduit.connect()
            let tooMany = Headers((0...WireLimits.maxHeaders).map { ("h\($0)", "v") })
            #expect(throws: WireError.self) { try conduit.send(tooMany) }
            // A digest check or a cancellation is one message: sent in parts, each carrying
            // `digest` was answered alone, with the digest of its part.
            let oversize = ByteBuffer(repeating: 1, count: 70_000)
            #expect(throws: WireError.self) { try conduit.send(["digest": "1", "token": "d"], payload: oversize) }
            #expect(throws: WireError.self) { try conduit.send(["cancel": "nothing"], payload: oversize) }
            #expect(String(buffer: try await conduit.request(route: "echo", payload: ByteBuffer(string: "ok")).payload) == "ok")
            conduit.close()
            let closed = await #expect(throws: ConduitClientError.self) { try await conduit.request(route: "echo") }
            #expect(closed?.code == .closed)
        }
    }

    /// `close()` while an attempt asks IPC for the port: the attempt opened its socket after
    /// the answer all the same (closing it at once), which replaced a socket of the same id
    /// that a new client had opened meanwhile. Closed, it opens nothing.
    @Test func aClientClosedWhileItAsksForThePortOpensNoSocket() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            // The close must come before the answer: 10 s, for a loaded machine.
            let slowIPC = try await ChaosProxy.start(targetPort: try #require(host.endpoints.ipcPort), delay: .seconds(10))
            let conduit = Conduit(
                id: "closed-early", address: HostAddress(ipcPort: slowIPC.port, sharedKey: host.sharedKey), autoReconnect: false)
            let attempt = Task { try await conduit.connect() }
            try await waitUntil { slowIPC.accepted > 0 }
            conduit.close()
            let outcome = await #expect(throws: ConduitClientError.self) { try await attempt.value }
            #expect(outcome?.code == .closed)
            #expect(host.client("closed-early") == nil, "a socket was opened for the id")
            try await slowIPC.stop()
        }
    }
}

/// About 130 MB each way through the debug build: past a minute on a machine loaded by the
/// rest of the suite.
@Suite("Client: large messages from many tasks", .timeLimit(.minutes(3)))
struct ConcurrentLargeMessageTests {
    /// Each part was its own write: from several threads at once, two messages' parts went out
    /// interleaved, and the host joined them into requests of the wrong bytes (no error).
    @Test func largeMessagesSentFromManyTasksAtOnceArriveWhole() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "parts")
            try await conduit.connect()
            // Two parts each, 32 in flight (well within the host's outbound queue, so no reply is
            // dropped), many rounds: the parts of two messages met in one round out of about forty.
            for round in 0..<60 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 0..<32 {
                        group.addTask {
                            let fill = UInt8(truncatingIfNeeded: round * 32 + n)
                            let payload = ByteBuffer(repeating: fill, count: WireLimits.maxPayloadBytes + 1 + n)
                            let reply = try await conduit.request(route: "echo", payload: payload)
                            #expect(reply.payload == payload, "request \(n) of round \(round) came back as other bytes")
                        }
                    }
                    try await group.waitForAll()
                }
            }
            conduit.close()
        }
    }
}
