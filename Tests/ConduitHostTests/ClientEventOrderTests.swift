@testable import ConduitHost
import ConduitKit
import ConduitTesting
import Dispatch
import NIOPosix
import Synchronization
import Testing

/// Handlers hear of an id's lives in the order the table went through them. The sweep that
/// ends an id's grace period told `.expired` after releasing the table's lock, and so did a
/// socket or an IPC call that began the id's next life, `.connected`: from two threads, the
/// next life's `.connected` could come first, and a handler that tracks ids (the NATS route's
/// subscription for an id's pushes) dropped the id that was connected.
@Suite struct ClientEventOrderTests {
    @Test func anIdsExpiryIsToldBeforeItsNextLifeBegins() async throws {
        let configuration = try ConfigurationLoader(environment: ["CONDUIT_SHARED_KEY": "order-key"]).load(
            yaml: "limits:\n  clientGraceSeconds: 0.3\n  pushBufferMessages: 8\nroutes:\n  - route: echo\n    handler: echo\n", file: "<test>")
        let settings = configuration.settings
        let told = Mutex<[ClientEvent]>([])
        let directory = ClientDirectory(
            settings: settings, timers: MultiThreadedEventLoopGroup.singleton.next(),
            budget: BufferBudget(limit: settings.hostBufferBytes, metrics: HostMetrics())) { event in told.withLock { $0.append(event) } }
        let id = ClientID("reborn")!
        #expect(directory.touch(id))
        // Enough waiting for the id that a callback waits for room: the sweep calls it as it
        // ends the id, after the table's lock and before the events. It holds the sweep there.
        for n in 1...3 { directory.push(numberedPush(n), to: id) }
        let sweepHeld = Atomic<Bool>(false)
        let release = DispatchSemaphore(value: 0)
        directory.whenWritable(id) {
            sweepHeld.store(true, ordering: .relaxed)
            _ = release.wait(timeout: .now() + 10)
        }
        try await waitUntil { sweepHeld.load(ordering: .relaxed) }
        // The id is out of the table: naming it again begins its next life.
        #expect(directory.touch(id))
        release.signal()
        try await waitUntil { told.withLock { $0.contains(.expired(id)) } }
        let order = told.withLock { Array($0.prefix(3)) }
        #expect(order == [.connected(id), .expired(id), .connected(id)])
    }
}
