import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Synchronization
import Testing

/// One id keeps at most 64 `whenWritable` callbacks. Past it the oldest was called at once:
/// it found the id still congested and waited again, as the handler guide says to, which
/// called the next oldest at once, and so on: 65 waiters (65 AI streams or TLS connections of
/// one client that stopped reading) spun a core on the directory's lock until the id drained.
@Suite("Waiting for a congested id", .serialized, .timeLimit(.minutes(3)))
struct WritableWaitersTests {
    @Test func waitersPastTheCapDoNotSpin() async throws {
        let yaml = "routes:\n  - route: waiting\n    handler: waiting\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let stalled = try await host.connect(client: "stalled", receiveBufferBytes: 65536)
            try await stalled.pauseReading()
            let driver = try await host.connect(client: "driver")
            // Filled first, and the waiters started once the id is seen congested: the pushes
            // reach the stalled socket on its own event loop, which a loaded full run got to
            // after the handler had asked (it answered false, and its waiters had nothing to wait for).
            _ = try await driver.request(Message(headers: ["route": "waiting", "to": "stalled", "fill": "150", "token": "fill"]))
            // (Generous waits: beside busy processes the fill took over 10 s, and the drain too.)
            try await waitUntil(timeout: .seconds(60)) { host.host.directory.isCongested(ClientID("stalled")!) }
            let reply = try await driver.request(Message(headers: ["route": "waiting", "to": "stalled", "waiters": "65", "token": "wait"]))
            #expect(reply.payload == ByteBuffer(string: "{\"data\":true}"), "the stalled id is congested")
            let before = WaitingHandler.wakeUpsWhileCongested.load(ordering: .relaxed)
            try await Task.sleep(for: .seconds(2))
            let wakeUps = WaitingHandler.wakeUpsWhileCongested.load(ordering: .relaxed) - before
            // At most a few a tenth of a second; the spin made hundreds of thousands.
            #expect(wakeUps < 1_000, "\(wakeUps) wake-ups in 2 s while the id stayed congested")
            try await stalled.resumeReading()
            try await waitUntil(timeout: .seconds(60)) { !host.host.directory.isCongested(ClientID("stalled")!) }
            try await stalled.close()
            try await driver.close()
        }
    }
}
