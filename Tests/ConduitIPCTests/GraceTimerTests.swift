@testable import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

/// Every id away had a timer of its own on one of the sockets' event loops, and SwiftNIO
/// cancels a timer by searching all of that loop's timers: pausing the host (`stop`, and its
/// shutdown) with tens of thousands of ids away, or as many ids coming back at once, held the
/// loop, and every socket on it, for as long as a quadratic search takes (30,000 ids: 14 s
/// in a debug build; 50,000: about 40 s). One timer serves every id now.
@Suite("Grace periods of many ids", .serialized, .timeLimit(.minutes(3)))
struct GraceTimerTests {
    @Test func pausingWithManyIdsAwayLeavesTheEventLoopFree() async throws {
        // 10 s: the 50,000 pushes must all be made before the first id would expire.
        let yaml = "limits:\n  clientGraceSeconds: 10\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let directory = host.host.directory
            for index in 0..<50_000 {
                directory.push(Message(headers: ["route": "p"]), to: ClientID("away-\(index)")!, delivery: .reliable)
            }
            directory.setPaused(true)
            let start = ContinuousClock.now
            try await directory.timers.submit {}.get()
            // A generous bound: what it bounds took about 40 s, and now takes milliseconds.
            #expect(ContinuousClock.now - start < .seconds(10))
            // While paused no id expires; after, each expires one grace period later.
            try await Task.sleep(for: .seconds(12))
            #expect(directory.places.held == 50_000)
            directory.setPaused(false)
            try await waitUntil(timeout: .seconds(60)) { directory.places.held == 0 }
            #expect(directory.budget.snapshot.dropped["expired"] == 50_000)
        }
    }
}
