import ConduitClient
import ConduitHost
import ConduitTesting
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// A control call waits its turn in the control plane's queue, behind a stop (up to the close
/// timeout) or a reload (up to a handler's start limit), holding its request: past its
/// connection's close, outside the budget. A caller with the key queued as many as it liked,
/// each with a body of up to 16 MiB. Bodies are now at most 4 KiB, and calls at most 64 at once.
@Suite("IPC: control calls are bounded", .serialized, .timeLimit(.minutes(2)))
struct ControlCallLimitTests {
    @Test func aControlRoutesBodyIsAtMostFourKiB() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let key = String(repeating: "k", count: 100_000)
            let refused = try await host.ipc().request(.POST, "/internal.conduit.setSharedKey", body: ByteBuffer(string: #"{"sharedKey":"\#(key)"}"#))
            #expect(refused.status == .payloadTooLarge)
            #expect(try refused.decode(ErrorEnvelope.self).err.message.contains("at most 4096 bytes"))
            let rotated = try await host.ipc().request(.POST, "/internal.conduit.setSharedKey", body: ByteBuffer(string: #"{"sharedKey":"a-key-that-fits"}"#))
            #expect(rotated.status == .ok)
        }
    }

    @Test func pastSixtyFourWaitingCallsTheNextAreRefusedAtOnce() async throws {
        // Echo routes only: a counting handler would count in its suite's global (run beside it).
        let table = "limits:\n  handlerStartStopSeconds: 600\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: table, catalog: .ipcTests) { host in
            // A reload whose new handler starts only when the test says holds the queue till then.
            let gated = table + "  - route: gated-start\n    handler: hanging\n    options: {name: call-limit-reload, startsWhenOpened: call-limit}\n"
            try gated.write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            let key = host.sharedKey
            let request: @Sendable (String) -> String = { route in
                "POST /internal.conduit.\(route) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nContent-Length: 0\r\n\r\n"
            }
            let reload = try await RawTCPClient.connect(port: host.ipcPort)
            try await reload.send(request("reload"))
            // This test's own instance: other suites' hanging handlers run beside it.
            try await waitUntil { HangingHandler.isRunning("call-limit-reload") }
            let callers = try await withThrowingTaskGroup(of: RawTCPClient.self) { group in
                for _ in 0..<70 {
                    group.addTask {
                        let raw = try await RawTCPClient.connect(port: host.ipcPort)
                        try await raw.send(request("start"))
                        return raw
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // The reload and 63 of these are in; 7 are answered 503 without waiting for the queue.
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for raw in callers {
                    group.addTask { String(String(buffer: try await raw.read(count: 12, timeout: .seconds(60))).prefix(12)) }
                }
                var answers: [String] = []
                for try await answer in group {
                    answers.append(answer)
                    // The rest wait for the reload, which ends once these are in.
                    if answers.count == 7 { HangingHandler.open("call-limit") }
                }
                return answers
            }
            #expect(answers.prefix(7).allSatisfy { $0 == "HTTP/1.1 503" }, "\(answers)")
            #expect(answers.dropFirst(7).allSatisfy { $0 == "HTTP/1.1 200" }, "\(answers)")
            let reloaded = String(buffer: try await reload.read(count: 12, timeout: .seconds(60)))
            #expect(reloaded.hasPrefix("HTTP/1.1 200"))
            for raw in callers { try? await raw.close() }
            try? await reload.close()
        }
    }
}
