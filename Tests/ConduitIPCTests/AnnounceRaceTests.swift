import ConduitTesting
import Foundation
import Testing
@testable import ConduitHost

/// The start-up read the socket server's port after starting it and announced it in a step
/// of its own: a stop over IPC that came in between (a caller that knew the IPC port) left the
/// announce line naming a port nothing listened on, while the runtime file said null. The
/// announce returns what it wrote now.
@Suite("The start-up's announce racing a stop", .timeLimit(.minutes(1)))
struct AnnounceRaceTests {
    @Test func anAnnounceAfterAStopSaysThereIsNoPort() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let control = host.host.control
            let stale = try #require(host.endpoints.port)
            _ = try await control.stop()
            var announced = host.endpoints
            announced.port = stale
            let written = try await control.announce(announced)
            #expect(written.port == nil)
            // Null, not left out (as in the announce line).
            let file = try String(contentsOfFile: written.runtimeFile, encoding: .utf8)
            #expect(file.contains("\"port\":null"), "\(file)")
        }
    }

    /// Written with `port: null` now, a file is read with it left out too (as hosts before
    /// wrote it while paused), by `conduit status` among others.
    @Test func aRuntimeFileReadsWithThePortNullOrLeftOut() throws {
        for json in [#"{"host":"127.0.0.1","ipcPort":5,"pid":1,"port":null,"sharedKey":"k"}"#, #"{"host":"127.0.0.1","ipcPort":5,"pid":1,"sharedKey":"k"}"#] {
            let file = try JSONDecoder().decode(RuntimeFile.self, from: Data(json.utf8))
            #expect(file.port == nil)
            #expect(file.ipcPort == 5)
        }
    }
}
