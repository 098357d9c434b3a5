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
        let table = "limits:\n  handlerStartStopSeconds: 15\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: table, catalog: .ipcTests) { host in
            // A reload whose new handler never starts holds the queue for 15 s.
            let hanging = table + "  - route: slow-start\n    handler: hanging\n    options: {startSeconds: 3600, name: call-limit-reload}\n"
            try hanging.write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            let reload = try await RawTCPClient.connect(port: host.ipcPort)
            try await reload.send("POST /internal.conduit.reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\nContent-Length: 0\r\n\r\n")
            // This test's own instance: other suites' hanging handlers run beside it.
            try await waitUntil { HangingHandler.isRunning("call-limit-reload") }
            var callers: [RawTCPClient] = []
            for _ in 0..<70 {
                let raw = try await RawTCPClient.connect(port: host.ipcPort)
                try await raw.send("POST /internal.conduit.start HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\nContent-Length: 0\r\n\r\n")
                callers.append(raw)
            }
            // The reload and 63 of these are in; 7 are answered 503 without waiting.
            let answers = await withTaskGroup(of: String.self) { group in
                for raw in callers {
                    group.addTask {
                        guard let head = try? await raw.read(count: 12, timeout: .seconds(5)) else { return "none" }
                        return String(String(buffer: head).prefix(12))
                    }
                }
                return await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            }
            #expect(answers["HTTP/1.1 503"] == 7, "\(answers)")
            for raw in callers { try? await raw.close() }
            try? await reload.close()
        }
    }
}
