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

    /// A control route's body limit is applied as its length is declared, as an invoked
    /// route's is: an 8 MB body to `stop` was read whole (after a `100 Continue`) before its 413.
    @Test func aControlRoutesDeclaredBodyOverFourKiBIsRefusedBeforeItIsSent() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let raw = try await RawTCPClient.connect(port: host.ipcPort)
            try await raw.send("POST /internal.conduit.stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\nContent-Length: 8000000\r\nExpect: 100-continue\r\n\r\n")
            let answer = String(buffer: try await raw.readUntilClosed(timeout: .seconds(30)))
            #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer)")
            #expect(answer.contains("a control route's body is at most 4096 bytes"), "\(answer)")
            let status = try await host.ipc().request(.GET, "/internal.conduit.status")
            #expect(status.text.contains("\"isActive\":true"), "the stop was not made: \(status.text)")
        }
    }

    @Test func pastSixtyFourWaitingCallsTheNextAreRefusedAtOnce() async throws {
        // Echo routes only: a counting handler would count in its suite's global (run beside it).
        try await TestHost.run(yaml: TestHost.patientEchoTable, catalog: .ipcTests) { host in
            let reload = try await host.holdControlQueue(name: "call-limit-reload", gate: "call-limit")
            let key = host.sharedKey
            let callers = try await withThrowingTaskGroup(of: RawTCPClient.self) { group in
                for _ in 0..<70 {
                    group.addTask {
                        let raw = try await RawTCPClient.connect(port: host.ipcPort)
                        try await raw.send(TestHost.controlRequest("start", key: key))
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
                    // The rest wait for the reload, which ends once these are in. What only
                    // reads the host's state is answered all the same: it does not queue (it
                    // was refused with the changes, when what the host does matters most).
                    if answers.count == 7 {
                        for route in ["status", "diagnostics", "getSharedKey"] {
                            let read = try await host.ipc().request(.GET, "/internal.conduit.\(route)")
                            #expect(read.status == .ok, "\(route): \(read.status) \(read.text)")
                        }
                        HangingHandler.open("call-limit")
                    }
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
