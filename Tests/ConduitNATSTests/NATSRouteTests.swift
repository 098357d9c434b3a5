import ConduitClient
import ConduitHost
import ConduitKit
import ConduitNATS
import ConduitNATSHandler
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

extension HandlerCatalog {
    static let natsTests = HandlerCatalog([HandlerKind(NATSHandler.self, name: "nats")])
}

/// `nats` routes over real sockets: a real host, real WebSocket clients, a real nats-server
/// and workers made with the NATS client.
@Suite(.serialized) struct NATSRouteTests {
    static func yaml(_ server: NATSServerProcess, timeoutSeconds: Double = 10) -> String {
        """
        routes:
          - route: work.*
            handler: nats
            options:
              url: \(server.url)
              timeoutSeconds: \(timeoutSeconds)
        """
    }

    static func worker(_ server: NATSServerProcess) async throws -> NATSClient {
        var options = try NATSClientOptions(url: server.url, name: "worker")
        options.initialReconnectDelay = .milliseconds(20)
        options.maxReconnectDelay = .milliseconds(200)
        let worker = NATSClient(options: options, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        try await worker.connect()
        return worker
    }

    /// Waits until the host's NATS route is connected (it connects in the background).
    /// Connects `id` and waits until a worker's push reaches it: the host subscribes for an id
    /// when it connects, and pushes before that can't reach it. The probe push is read.
    static func connectReachable(_ id: String, to host: TestHost, from worker: NATSClient) async throws -> TestWebSocketClient {
        let client = try await host.connect(client: id)
        // Probes of a route of their own: one that timed out on a loaded machine still arrives
        // later, and under the tests' route it was taken for their push.
        try await waitUntil {
            (try? await worker.request("conduit.push.\(id)", headers: ["route": "probe"], payload: ByteBuffer(string: "probe"), timeout: .seconds(1))) != nil
        }
        _ = try await client.nextMessage(route: "probe")
        return client
    }

    static func routeIsUp(_ host: TestHost) async throws {
        try await waitUntil(timeout: .seconds(20)) {
            let client = try await host.connect(client: "probe")
            defer { Task { try? await client.close() } }
            let reply = try await client.request(Message(headers: ["route": "work.probe", "token": "p"]))
            return reply.headers["error"] != "UnavailableError" || !String(buffer: reply.payload).contains("down")
        }
    }

    @Test func aWorkerAnswersWithRouteAndTokenKept() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await Self.worker(server)
            let seen = Mutex<NATSHeaders?>(nil)
            try await NATSClientTests.answerWithHeaders(on: "work.upper", with: worker) { message in
                seen.withLock { $0 = message.headers }
                return (["answered-by": "worker-1", "route": "forged"], ByteBuffer(string: String(buffer: message.payload).uppercased()))
            }
            try await TestHost.run(yaml: Self.yaml(server), catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let client = try await host.connect(client: "alice")
                // A client can't speak for another: its own `conduit-client` is replaced.
                let reply = try await client.request(Message(
                    headers: ["route": "work.upper", "token": "t1", "x-custom": "v", "conduit-client": "mallory", "Conduit-Client": "eve"],
                    payload: ByteBuffer(string: "hello")))
                #expect(reply.headers["error"] == nil, "\(String(buffer: reply.payload))")
                #expect(String(buffer: reply.payload) == "HELLO")
                #expect(reply.headers["route"] == "work.upper")
                #expect(reply.headers["token"] == "t1")
                #expect(reply.headers["answered-by"] == "worker-1")
                let headers = try #require(seen.withLock { $0 })
                #expect(headers["conduit-client"] == "alice")
                // Whatever its case: a worker whose library matches names without case (.NET's)
                // took the first, the client's.
                #expect(headers.filter { $0.name.lowercased() == "conduit-client" }.count == 1)
                #expect(headers["x-custom"] == "v")
                #expect(headers["token"] == "t1")
            }
            await worker.close()
        }
    }

    @Test func threeWorkersInAQueueGroupShare300Requests() async throws {
        try await NATSServerProcess.run { server in
            let counts = Mutex([0, 0, 0])
            var workers: [NATSClient] = []
            for index in 0..<3 {
                let worker = try await Self.worker(server)
                _ = try worker.subscribe("work.job", queue: "workers") { message in
                    counts.withLock { $0[index] += 1 }
                    try? worker.publish(message.replyTo!, payload: message.payload)
                }
                try await NATSClientTests.flush(worker)
                workers.append(worker)
            }
            try await TestHost.run(yaml: Self.yaml(server), catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let client = try await host.connect()
                for n in 0..<300 {
                    let reply = try await client.request(Message(headers: ["route": "work.job", "token": "\(n)"], payload: ByteBuffer(string: "\(n)")))
                    #expect(String(buffer: reply.payload) == "\(n)")
                }
            }
            let shares = counts.withLock { $0 }
            #expect(shares.reduce(0, +) == 300)
            #expect(shares.allSatisfy { $0 > 0 }, "each worker gets some: \(shares)")
            for worker in workers { await worker.close() }
        }
    }

    @Test func noWorkerIsUnavailableAtOnceAndASilentWorkerTimesOut() async throws {
        try await NATSServerProcess.run { server in
            let silent = try await Self.worker(server)
            _ = try silent.subscribe("work.silent") { _ in }
            try await NATSClientTests.flush(silent)
            try await TestHost.run(yaml: Self.yaml(server, timeoutSeconds: 5), catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let client = try await host.connect()
                // Known before the timeout: a request is answered once, and after 5 s the answer
                // would have been the timeout's ("in time"). No clock here: a loaded machine can
                // take longer than any bound below 5 s to carry the answer back (0.5 s was close).
                let nobody = try await client.request(Message(headers: ["route": "work.nobody", "token": "1"]))
                #expect(nobody.headers["error"] == "UnavailableError")
                #expect(String(buffer: nobody.payload).contains("no responders"))
                let silentReply = try await client.request(Message(headers: ["route": "work.silent", "token": "2"]))
                #expect(silentReply.headers["error"] == "UnavailableError")
                #expect(String(buffer: silentReply.payload).contains("in time"))
            }
            await silent.close()
        }
    }

    @Test func aCancelledRequestIsAnsweredCancelledAndItsNATSRequestEnds() async throws {
        try await NATSServerProcess.run { server in
            let silent = try await Self.worker(server)
            _ = try silent.subscribe("work.slow") { _ in }
            try await NATSClientTests.flush(silent)
            try await TestHost.run(yaml: Self.yaml(server, timeoutSeconds: 60), catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let client = try await host.connect()
                try await client.send(Message(headers: ["route": "work.slow", "token": "c1"]))
                try await Task.sleep(for: .milliseconds(100))
                try await client.send(Message(headers: ["cancel": "c1"]))
                let answer = try await client.nextMessage()
                #expect(answer.headers["token"] == "c1")
                #expect(answer.headers["error"] == "CancelledError")
                // Answered once: the next message is the answer to the next request, and the
                // connection's slot is free again.
                try await client.send(Message(headers: ["route": "work.nobody", "token": "n"]))
                let next = try await client.nextMessage()
                #expect(next.headers["token"] == "n", "a second answer to the cancelled request: \(next.headers)")
                #expect(next.headers["error"] == "UnavailableError")
            }
            await silent.close()
        }
    }

    @Test func aChunkedMebibyteReachesTheWorkerWholeAndOverMaxPayloadIsRefused() async throws {
        try await NATSServerProcess.run(configuration: "max_payload: 2MB") { server in
            let worker = try await Self.worker(server)
            try await NATSClientTests.answer(on: "work.size", with: worker) { message in
                var payload = message.payload
                let bytes = payload.readBytes(length: payload.readableBytes)!
                let intact = bytes.enumerated().allSatisfy { $0.element == UInt8($0.offset % 251) }
                return ByteBuffer(string: "\(bytes.count) \(intact)")
            }
            let yaml = Self.yaml(server) + "\nlimits:\n  chunkQueueBytes: 8388608\n"
            try await TestHost.run(yaml: yaml, catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let client = try await host.connect()
                let mebibyte = (0..<(1 << 20)).map { UInt8($0 % 251) }
                try await client.send(chunked: mebibyte, ["route": "work.size", "token": "big"])
                let reply = try await client.nextMessage(timeout: .seconds(20))
                #expect(reply.headers["token"] == "big")
                #expect(String(buffer: reply.payload) == "1048576 true")

                try await client.send(chunked: [UInt8](repeating: 0, count: 3 << 20), ["route": "work.size", "token": "huge"])
                let refused = try await client.nextMessage(timeout: .seconds(20))
                #expect(refused.headers["token"] == "huge")
                #expect(refused.headers["error"] == "PayloadTooLargeError")
                #expect(String(buffer: refused.payload).contains("max_payload"))
            }
            await worker.close()
        }
    }

    @Test func aWorkersPushReachesAConnectedClientAndWaitsForAnAwayOne() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await Self.worker(server)
            try await TestHost.run(yaml: Self.yaml(server), catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let bob = try await Self.connectReachable("bob", to: host, from: worker)
                try worker.publish("conduit.push.bob", headers: ["route": "news", "n": "1"], payload: ByteBuffer(string: "live"))
                let live = try await bob.nextMessage(route: "news")
                #expect(live.headers["n"] == "1")
                #expect(String(buffer: live.payload) == "live")

                try await bob.close()
                try await waitUntil { host.client("bob")?.connected == false }
                try worker.publish("conduit.push.bob", headers: ["route": "news", "n": "2"], payload: ByteBuffer(string: "while away"))
                try await waitUntil { (host.client("bob")?.buffered ?? 0) == 1 }
                let back = try await host.connect(client: "bob")
                let buffered = try await back.nextMessage(route: "news")
                #expect(buffered.headers["n"] == "2")
                #expect(String(buffer: buffered.payload) == "while away")
            }
            await worker.close()
        }
    }

    /// A worker's plain publish to an away id whose buffer is full follows the host's policy,
    /// drop-oldest by default (SPEC §3): it was taken as a byte stream's piece (never dropped
    /// once held), so the newest pushes were refused and the oldest kept, and each refusal
    /// searched the whole buffer. A push published as a request is kept whole (it takes the
    /// place of the oldest plain one here) and its publisher told so.
    @Test func aWorkersPlainPushesToAFullBufferDropTheOldest() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await Self.worker(server)
            let yaml = "limits:\n  pushBufferMessages: 3\n" + Self.yaml(server)
            try await TestHost.run(yaml: yaml, catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let dana = try await Self.connectReachable("dana", to: host, from: worker)
                try await dana.close()
                try await waitUntil { host.client("dana")?.connected == false }
                for n in 1...5 {
                    try worker.publish("conduit.push.dana", headers: ["route": "news", "n": "\(n)"], payload: ByteBuffer(string: "\(n)"))
                }
                try await waitUntil { (host.client("dana")?.dropped ?? 0) == 2 }
                let asked = try await worker.request("conduit.push.dana", headers: ["route": "news", "n": "asked"], payload: ByteBuffer(), timeout: .seconds(10))
                #expect(asked.headers["conduit-accepted"] == "true", "\(asked.headers)")
                let back = try await host.connect(client: "dana")
                let kept = try await back.nextMessages(3).map { $0.headers["n"] }
                #expect(kept == ["4", "5", "asked"])
                #expect(host.client("dana")?.dropped == 3)
            }
            await worker.close()
        }
    }

    /// An id the host holds through IPC alone (named by an invocation, or reading its events
    /// stream) gets its workers' pushes like any held id: the host subscribed for an id only
    /// when a socket opened for it, and pushes to the others were lost, uncounted.
    @Test func aWorkersPushReachesAnIdHeldOverIPCOnly() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await Self.worker(server)
            try await TestHost.run(yaml: Self.yaml(server), catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let ipc = IPCClient(port: host.endpoints.ipcPort!, key: host.sharedKey)
                _ = try await ipc.request(.GET, "/work.none?id=named")
                // Retried until the host has subscribed (no responders fails at once); a request
                // timing out on a loaded machine would be one the host took, then pushed again.
                try await waitUntil(timeout: .seconds(30)) {
                    (try? await worker.request("conduit.push.named", headers: ["route": "news"], payload: ByteBuffer(string: "kept"), timeout: .seconds(10))) != nil
                }
                #expect(host.client("named")?.buffered == 1)

                let streamed = Task {
                    var received: Message?
                    try await ipc.events(for: "streamed") { message in
                        received = message
                        return false
                    }
                    return received
                }
                try await waitUntil { host.client("streamed") != nil }
                try await waitUntil {
                    (try? await worker.request("conduit.push.streamed", headers: ["route": "news"], payload: ByteBuffer(string: "down the stream"), timeout: .seconds(1))) != nil
                }
                let message = try await streamed.value
                #expect(message.map { String(buffer: $0.payload) } == "down the stream")
            }
            await worker.close()
        }
    }

    /// A reload that changes the `nats` route builds a new handler, which hears only of ids
    /// that connect from then on: when the old one stopped, ids connected before the reload had
    /// no subscription left, and their workers' pushes were lost, uncounted.
    @Test func aWorkersPushStillReachesAClientConnectedBeforeAReload() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await Self.worker(server)
            try await TestHost.run(yaml: Self.yaml(server), catalog: .natsTests) { host in
                try await Self.routeIsUp(host)
                let carol = try await Self.connectReachable("carol", to: host, from: worker)
                try Self.yaml(server, timeoutSeconds: 5).write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
                try await host.host.reload()
                // The new handler's subscription is made over its own NATS connection: wait for it.
                try await waitUntil {
                    (try? await worker.request("conduit.push.carol", headers: ["route": "news", "n": "after"], payload: ByteBuffer(string: "reloaded"), timeout: .seconds(1)))?
                        .headers[HeldClientPushes.acceptedHeader] == "true"
                }
                #expect(try await carol.nextMessage(route: "news").headers["n"] == "after")
            }
            await worker.close()
        }
    }

    @Test func nothingCrashesWhileNATSIsDownAndServiceResumesWithoutARestart() async throws {
        let server = try NATSServerProcess()
        try await server.start()
        defer { server.stop() }
        let worker = try await Self.worker(server)
        try await NATSClientTests.answer(on: "work.echo", with: worker) { $0.payload }
        try await TestHost.run(yaml: Self.yaml(server), catalog: .natsTests) { host in
            try await Self.routeIsUp(host)
            let client = try await host.connect()
            #expect(String(buffer: try await client.request(Message(headers: ["route": "work.echo", "token": "a"], payload: ByteBuffer(string: "before"))).payload) == "before")

            server.stop()
            try await waitUntil {
                let reply = try await client.request(Message(headers: ["route": "work.echo", "token": "down"]))
                return reply.headers["error"] == "UnavailableError" && String(buffer: reply.payload).contains("down")
            }
            let diagnostics = try await Self.routeDetails(host)
            #expect(diagnostics["nats.state"] == .text("connecting"))

            try await server.start()
            try await waitUntil(timeout: .seconds(30)) {
                let reply = try await client.request(Message(headers: ["route": "work.echo", "token": "b"], payload: ByteBuffer(string: "after")))
                return String(buffer: reply.payload) == "after"
            }
            let after = try await Self.routeDetails(host)
            #expect(after["nats.state"] == .text("connected"))
            #expect(after["nats.reconnects"] == .number(1))
        }
        await worker.close()
    }

    // MARK: Helpers

    /// The `details` of the `work.*` route in `internal.conduit.diagnostics`.
    static func routeDetails(_ host: TestHost) async throws -> [String: DiagnosticValue] {
        let ipc = IPCEndpoint(port: try #require(host.endpoints.ipcPort), sharedKey: host.sharedKey)
        return try await ipc.diagnostics().routes.first { $0.route == "work.*" }?.details ?? [:]
    }
}
