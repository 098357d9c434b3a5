import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// SPEC §6: `start` reopens the socket server. It bound the listener before it lifted the
/// pause, so a socket accepted in between was given its 101 and then closed 1001 "paused"
/// by a server that was starting, not stopping.
@Suite("Start racing connects", .serialized, .timeLimit(.minutes(5)))
struct StartRaceTests {
    @Test func aSocketAcceptedByAStartIsNotClosedAsPaused() async throws {
        let port = try NATSServerProcess.freePort()
        try await TestHost.run(yaml: "server:\n  port: \(port)\nroutes:\n  - route: echo\n    handler: echo\n", catalog: .ipcTests) { host in
            let ipc = host.ipc()
            var closedAsPaused = 0
            for cycle in 0..<40 {
                #expect(try await ipc.request(.POST, "/internal.conduit.stop").status == .ok)
                // Connects hammer the port while the start binds it; no stop comes before they end.
                closedAsPaused += try await withThrowingTaskGroup(of: Int.self) { group in
                    for attempt in 0..<4 {
                        group.addTask {
                            for _ in 0..<20_000 {
                                // A refused connect, then a millisecond's rest: back to back, the
                                // four loops took both cores from the rest of a full run until the
                                // start was done (three other tests hit their time limits).
                                guard let socket = try? await TestWebSocketClient.connect(port: port, path: host.path(client: "c\(cycle)-\(attempt)")) else {
                                    try? await Task.sleep(for: .milliseconds(1))
                                    continue
                                }
                                let close = try? await socket.nextClose(timeout: .milliseconds(200))
                                try? await socket.close()
                                return close?.code == 1001 ? 1 : 0
                            }
                            return 0
                        }
                    }
                    #expect(try await ipc.request(.POST, "/internal.conduit.start").status == .ok)
                    return try await group.reduce(0, +)
                }
            }
            #expect(closedAsPaused == 0, "sockets given a 101 by a start and closed as paused")
        }
    }
}
