import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// A handler's `start()` or `stop()` that never returns held the control plane's queue: the
/// reload waiting on it never answered, and neither did every later key change, start, stop,
/// reload, nor the shutdown (SIGTERM never ended the process). Each is given
/// `limits.handlerStartStopSeconds`: a start past it fails the reload (the old table stays), a
/// stop past it is left to finish in the background.
@Suite("Handlers that hang in start or stop", .serialized, .timeLimit(.minutes(1)))
struct HandlerLifecycleLimitTests {
    static let limits = "limits:\n  handlerStartStopSeconds: 1\n"

    @Test func aStopThatHangsDoesNotHoldTheControlPlane() async throws {
        let yaml = Self.limits + ControlRaceTests.countingYAML(
            version: 1, extra: "  - route: stuck\n    handler: hanging\n    options: {stopSeconds: 3600}\n", scope: "lifecycle")
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            try (Self.limits + ControlRaceTests.countingYAML(version: 1, scope: "lifecycle")).write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            #expect(try await host.ipc().request(.POST, "/internal.conduit.reload").status == .ok)
            let rotated = try await host.ipc().request(.POST, "/internal.conduit.setSharedKey", body: ByteBuffer(string: #"{"sharedKey":"after-a-stuck-stop"}"#))
            #expect(rotated.status == .ok)
            let client = try await TestWebSocketClient.connect(port: host.port, path: host.path(client: "after-stuck", key: "after-a-stuck-stop"))
            let reply = try await client.request(Message(headers: ["route": "stuck", "token": "1"]))
            #expect(reply.headers["error"] == "NotFoundError", "the route went with the reload")
            try await client.close()
        }
    }

    @Test func aStartThatHangsFailsTheReloadAndTheOldTableStays() async throws {
        try await TestHost.run(yaml: Self.limits + ControlRaceTests.countingYAML(version: 1, scope: "lifecycle"), catalog: .ipcTests) { host in
            let hanging = Self.limits + ControlRaceTests.countingYAML(
                version: 1, extra: "  - route: slow-start\n    handler: hanging\n    options: {startSeconds: 3600}\n", scope: "lifecycle")
            try hanging.write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            let refused = try await host.ipc().request(.POST, "/internal.conduit.reload")
            #expect(refused.status != .ok)
            #expect(try refused.decode(ErrorEnvelope.self).err.message.contains("slow-start"))
            let rotated = try await host.ipc().request(.POST, "/internal.conduit.setSharedKey", body: ByteBuffer(string: #"{"sharedKey":"after-a-slow-start"}"#))
            #expect(rotated.status == .ok)
            let client = try await TestWebSocketClient.connect(port: host.port, path: host.path(client: "after-slow-start", key: "after-a-slow-start"))
            #expect(try await client.request(Message(headers: ["route": "slow-start", "token": "1"])).headers["error"] == "NotFoundError")
            #expect(String(buffer: try await client.request(Message(headers: ["route": "counted", "token": "2"])).payload) == #"{"data":1}"#)
            try await client.close()
        }
    }

    /// A reload (SIGHUP) while the start-up was starting the handlers stopped a removed route
    /// the start-up had not reached yet, which the start-up then started: a handler in no
    /// table, which nothing, the shutdown included, ever stopped. It waits for the start-up now.
    @Test func aReloadDuringTheStartUpLeavesNoHandlerRunningOutsideTheTable() async throws {
        let first = "routes:\n  - route: first\n    handler: hanging\n    options: {startSeconds: 0.5}\n"
        let begun = HangingHandler.startsBegun.load(ordering: .relaxed)
        try await TestHost.run(yaml: first + "  - route: removed\n    handler: hanging\n    options: {name: removed-at-start-up}\n", catalog: .ipcTests, duringStartUp: { host, file in
            try await waitUntil { HangingHandler.startsBegun.load(ordering: .relaxed) > begun }
            try first.write(toFile: file, atomically: true, encoding: .utf8)
            try await host.reload()
        }) { host in
            #expect(!HangingHandler.isRunning("removed-at-start-up"), "the removed route's handler runs")
            let client = try await host.connect(client: "after-start-up-reload")
            #expect(try await client.request(Message(headers: ["route": "removed", "token": "1"])).headers["error"] == "NotFoundError")
            try await client.close()
        }
        #expect(!HangingHandler.isRunning("removed-at-start-up"))
    }
}
