import ConduitClient
@testable import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// SPEC §8: control operations are serialised. Concurrent callers (the original runtime's
/// clients start a paused server from many instances at once) never leave two listeners, an
/// answer describing another caller's state, a half-applied route table or a failed file write.
@Suite("Concurrent control calls", .serialized, .timeLimit(.minutes(3)))
struct ControlRaceTests {
    private func status(_ response: IPCClient.Response) throws -> StatusBody {
        try response.decode(DataEnvelope<StatusBody>.self).data
    }

    /// Sends the control calls `calls` makes while a host's shutdown is held: its listener is
    /// down (status says so) and its stop waits for a socket that never answers its close (the
    /// close timeout is 10 minutes). The calls queue behind that stop; a second later the socket
    /// is closed, the shutdown goes on, and they have their turn. (With the default 5 s, a
    /// loaded run's status poll could come after the shutdown. A call that reaches the host
    /// after the second finds the listener closed: the test then checks less, but does not
    /// fail.) Returns the calls' answers once the shutdown is
    /// over, the runtime file and the WebSocket port.
    private func duringAHeldShutdown<T: Sendable>(
        _ calls: @escaping @Sendable (IPCClient) -> Task<T, Never>
    ) async throws -> (answers: T, runtimeFile: String, port: Int) {
        let port = try NATSServerProcess.freePort()
        let yaml = "server:\n  port: \(port)\nlimits:\n  closeTimeoutSeconds: 600\nroutes:\n  - route: echo\n    handler: echo\n"
        let (answers, runtimeFile) = try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let silent = try await silentSocket(to: host)
            let ipc = host.ipc()
            // Runs once the body has returned and the shutdown begun.
            let answers = Task {
                do {
                    try await waitUntil(timeout: .seconds(60)) { try self.status(try await ipc.request(.GET, "/internal.conduit.status")).isActive == false }
                } catch {
                    try? await silent.close()
                    throw error
                }
                let sent = calls(ipc)
                try? await Task.sleep(for: .seconds(1))
                try? await silent.close()
                return await sent.value
            }
            return (answers, host.endpoints.runtimeFile)
        }
        let outcome = try await answers.value
        // What was queued behind the shutdown's stop has had its turn by now (a call that
        // still wrote after the shutdown would show in the next second).
        try await Task.sleep(for: .seconds(1))
        return (outcome, runtimeFile, port)
    }

    /// A WebSocket of `host`'s that never answers a close, once its id holds it.
    private func silentSocket(to host: TestHost) async throws -> RawTCPClient {
        let silent = try await RawTCPClient.connect(port: host.port)
        try await silent.send("GET \(host.path(client: "silent")) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        #expect(String(buffer: try await silent.read(count: 12)).hasPrefix("HTTP/1.1 101"))
        // The 101 is written before the socket is attached to its id: a stop begun in between
        // does not wait for it (it is closed as it attaches), and a shutdown closed the IPC
        // listener before the test's first status poll (4 runs in 10 here).
        try await waitUntil { host.host.directory.sessions.contains { $0.client.rawValue == "silent" } }
        return silent
    }

    /// `limits.closeTimeoutSeconds`: a stop waits that long for a socket that never answers its
    /// close (a fixed 5 s before). Still waiting past the old 5 s, then answered once the socket
    /// closes.
    @Test func aStopWaitsForASilentSocketAsLongAsTheCloseTimeoutSays() async throws {
        try await TestHost.run(yaml: "limits:\n  closeTimeoutSeconds: 3600\nroutes:\n  - route: echo\n    handler: echo\n", catalog: .ipcTests) { host in
            let silent = try await silentSocket(to: host)
            let ipc = host.ipc()
            let answered = Atomic(false)
            let stop = Task {
                defer { answered.store(true, ordering: .relaxed) }
                return try await ipc.request(.POST, "/internal.conduit.stop").status
            }
            try await Task.sleep(for: .seconds(7))
            #expect(silent.channel.isActive, "the silent socket was cut before its close timeout")
            let stopAnswered = answered.load(ordering: .relaxed)
            #expect(!stopAnswered, "the stop did not wait for the silent socket")
            try await silent.close()
            #expect(try await stop.value == .ok)
        }
    }

    /// The IPC listener stays up while the shutdown's stop closes the sockets (up to the close
    /// timeout for a client that never answers): a start queued behind that stop bound the
    /// socket server again once it was done, a listener nothing ever closed.
    @Test func aStartDuringShutdownIsRefusedAndNothingListensAfterIt() async throws {
        let (start, runtimeFile, port) = try await duringAHeldShutdown { ipc in
            Task { try? await ipc.request(.POST, "/internal.conduit.start").status }
        }
        unlink(runtimeFile)
        #expect(start != .ok, "the start is refused (or unanswered: it came after the shutdown)")
        let connected = try? await RawTCPClient.connect(port: port)
        #expect(connected == nil, "something listens on \(port) after the shutdown")
        try await connected?.close()
    }

    /// A stop queued behind the shutdown's own stop rewrote the runtime file (port null, the
    /// key in it) after the shutdown had removed it: a stale file naming a dead host, which
    /// SPEC §8 rules out. Once shutting down, a stop is refused too.
    @Test func aStopDuringShutdownLeavesNoRuntimeFile() async throws {
        let (answers, runtimeFile, _) = try await duringAHeldShutdown { ipc in
            Task {
                await withTaskGroup(of: HTTPResponseStatus?.self) { group in
                    for _ in 0..<20 { group.addTask { try? await ipc.request(.POST, "/internal.conduit.stop").status } }
                    return await group.reduce(into: []) { $0.append($1) }
                }
            }
        }
        #expect(!FileManager.default.fileExists(atPath: runtimeFile), "a stop rewrote the runtime file after the shutdown removed it")
        #expect(!answers.contains(.ok), "\(answers)")
        unlink(runtimeFile)
    }

    /// A change waits its turn (behind a stop closing slow sockets, a reload starting a
    /// handler) after its key was checked on its request's head: two rotations sent with the
    /// same key while the queue was held both ran, the second undoing the first's revocation
    /// of that key. The key is checked again when a change runs.
    @Test func aChangeWhoseKeyWasRotatedAwayWhileItWaitedIsRefused() async throws {
        try await TestHost.run(yaml: TestHost.patientEchoTable, catalog: .ipcTests) { host in
            let key = host.sharedKey
            let reload = try await host.holdControlQueue(name: "key-race-reload", gate: "key-race")
            let newKeys = ["rotated-first-key", "rotated-second-key"]
            var callers: [RawTCPClient] = []
            for newKey in newKeys {
                let raw = try await RawTCPClient.connect(port: host.ipcPort)
                try await raw.send(TestHost.controlRequest("setSharedKey?sharedKey=\(newKey)", key: key, closing: true))
                callers.append(raw)
            }
            // Both past the check on their heads (waited for only so that the old host shows
            // the fault): either order gives one 200 and one 403 here, and so does a head
            // that came after the rotation (refused by the key check on heads, on a loaded run).
            try await Task.sleep(for: .milliseconds(500))
            HangingHandler.open("key-race")
            var answers: [String] = []
            for raw in callers { answers.append(String(buffer: try await raw.readUntilClosed(timeout: .seconds(60)))) }
            let accepted = answers.indices.filter { answers[$0].hasPrefix("HTTP/1.1 200") }
            #expect(accepted.count == 1, "\(answers)")
            #expect(answers.filter { $0.hasPrefix("HTTP/1.1 403") }.count == 1, "\(answers)")
            if let winner = accepted.first { #expect(host.sharedKey == newKeys[winner]) }
            let reloaded = String(buffer: try await reload.read(count: 12, timeout: .seconds(60)))
            #expect(reloaded.hasPrefix("HTTP/1.1 200"), "\(reloaded)")
        }
    }

    @Test func concurrentStartsBindOneListenerAndStopLeavesNone() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let ipc = host.ipc()
            for _ in 0..<3 {
                _ = try await ipc.request(.POST, "/internal.conduit.stop")
                let answers = try await withThrowingTaskGroup(of: StatusBody.self) { group in
                    for _ in 0..<12 { group.addTask { try self.status(try await ipc.request(.POST, "/internal.conduit.start")) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let ports = Set(answers.compactMap(\.port))
                #expect(ports.count == 1, "every concurrent start answers the same port: \(ports.sorted())")
                #expect(answers.allSatisfy { $0.isActive })
                let stopped = try status(try await ipc.request(.POST, "/internal.conduit.stop"))
                #expect(!stopped.isActive)
                for port in ports {
                    let connected = try? await RawTCPClient.connect(port: port)
                    #expect(connected == nil, "nothing listens on \(port) after stop")
                    try await connected?.close()
                }
            }
        }
    }

    @Test func stopAnswersWithTheStateItLeft() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let ipc = host.ipc()
            for _ in 0..<50 {
                let (stop, start) = try await (
                    ipc.request(.POST, "/internal.conduit.stop"), ipc.request(.POST, "/internal.conduit.start"))
                let stopped = try status(stop)
                let started = try status(start)
                #expect(!stopped.isActive, "a stop never reports a later caller's start")
                #expect(started.isActive)
            }
        }
    }

    /// A pause closes every socket (SPEC §6), those whose handshake is not done included: one
    /// accepted before a stop and completed after the next start was upgraded, a live socket on
    /// a port nothing listened to any more (a client told of it could not open a second one).
    @Test func aHandshakeBegunBeforeAStopDoesNotOutliveIt() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let ipc = host.ipc()
            let client = try await RawTCPClient.connect(port: host.port)
            try await client.send("GET \(host.path(client: "begun-before-stop")) HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            // Held by the host before the stop (else the closed listener's backlog would close it).
            try await waitUntil {
                try await ipc.request(.GET, "/internal.conduit.diagnostics").decode(DataEnvelope<DiagnosticsBody>.self).data.handshakes.pending == 1
            }
            _ = try status(try await ipc.request(.POST, "/internal.conduit.stop"))
            #expect(try status(try await ipc.request(.POST, "/internal.conduit.start")).isActive)
            try? await client.send(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            // Nil: still open 30 s on (upgraded).
            let answer = try? await client.readUntilClosed(timeout: .seconds(30))
            #expect(answer?.readableBytes == 0, "closed by the stop, unanswered: \(answer.map { String(buffer: $0).prefix(40) } ?? "left open")")
            #expect(host.client("begun-before-stop")?.connected != true)
        }
    }

    @Test func concurrentKeyWritesAllSucceed() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let ipc = host.ipc()
            // The same key each time, so every request is authorised whichever lands first;
            // each still rewrites the runtime file. 60: past 64 waiting, a change is refused
            // (503, by design), and a loaded run had 100 waiting at once.
            let statuses = try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for _ in 0..<60 {
                    group.addTask { try await ipc.request(.POST, "/internal.conduit.setSharedKey?sharedKey=\(host.sharedKey)").status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == .ok }, "\(statuses.filter { $0 != .ok })")
            let file = try RuntimeFile.read(from: host.endpoints.runtimeFile)
            #expect(file.sharedKey == host.sharedKey)
        }
    }

    /// What `CountingHandler.live` counts: this suite's instances, not another suite's.
    static let countingScope = "control-race"

    static func countingYAML(version: Int, extra: String = "", scope: String = countingScope) -> String {
        "routes:\n  - route: counted\n    handler: counting\n    options: {version: \(version), scope: \(scope)}\n\(extra)"
    }

    @Test func concurrentReloadsLeaveExactlyTheCurrentHandlersRunning() async throws {
        try await TestHost.run(yaml: Self.countingYAML(version: 1), catalog: .ipcTests) { host in
            let ipc = host.ipc()
            #expect(CountingHandler.live == 1)
            for version in 2...4 {
                try Self.countingYAML(version: version).write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
                let statuses = try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                    for _ in 0..<6 { group.addTask { try await ipc.request(.POST, "/internal.conduit.reload").status } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses.allSatisfy { $0 == .ok })
                #expect(CountingHandler.live == 1, "no reload's handler is left running")
                let client = try await host.connect(client: "reloaded-\(version)")
                let reply = try await client.request(Message(headers: ["route": "counted"]))
                #expect(String(buffer: reply.payload) == #"{"data":\#(version)}"#)
            }
        }
        #expect(CountingHandler.live == 0, "shutdown stops the last one")
    }

    @Test func aReloadThatFailsHalfWayStopsWhatItStarted() async throws {
        try await TestHost.run(yaml: Self.countingYAML(version: 1), catalog: .ipcTests) { host in
            let broken = Self.countingYAML(
                version: 2, extra: "  - route: broken\n    handler: counting\n    options: {version: 9, failStart: true, scope: \(Self.countingScope)}\n")
            try broken.write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            let refused = try await host.ipc().request(.POST, "/internal.conduit.reload")
            #expect(refused.status != .ok)
            #expect(CountingHandler.live == 1, "the version 2 handler it started is stopped again")
            let client = try await host.connect(client: "after-failed-reload")
            let reply = try await client.request(Message(headers: ["route": "counted"]))
            #expect(String(buffer: reply.payload) == #"{"data":1}"#, "the old table stays")
        }
    }

    @Test func aReloadOfAFileWithNoRoutesIsRefused() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            try "routes: []\n".write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            let refused = try await host.ipc().request(.POST, "/internal.conduit.reload")
            #expect(refused.status == .badRequest)
            #expect(try refused.decode(ErrorEnvelope.self).err.message.contains("no routes"))
            let client = try await host.connect(client: "still-routed")
            #expect(try await client.request(Message(headers: ["route": "echo", "token": "1"])).headers["token"] == "1")
        }
    }
}
