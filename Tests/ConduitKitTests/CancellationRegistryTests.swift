import ConduitKit
import ConduitWire
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

/// What a connection keeps for the requests its client can cancel (SPEC §8).
@Suite("Cancellation registry")
struct CancellationRegistryTests {
    private static func request(_ token: String, in registry: CancellationRegistry) -> Request {
        var request = Request(
            headers: ["route": "r", "token": token], payload: ByteBuffer(), route: "r", operation: "r",
            client: ClientID("1")!, transport: .webSocket, eventLoop: EmbeddedEventLoop())
        request.cancellations = registry
        return request
    }

    /// Requests refused under the token of one still running (an AI stream's, say) each left
    /// their handler, and what it captured, in the running one's entry until it ended; a
    /// cancel then ran all of them.
    @Test func aRemovedRegistrationTakesItsHandlerAlong() {
        let registry = CancellationRegistry()
        let ran = Mutex(0)
        let running = Self.request("T", in: registry).onCancel { ran.withLock { $0 += 1 } }
        for _ in 0..<1_000 {
            Self.request("T", in: registry).onCancel { ran.withLock { $0 += 1 } }.remove()
        }
        #expect(registry.cancel("T") != nil)
        #expect(ran.withLock { $0 } == 1)
        #expect(running.remove(), "the running request learns it was cancelled")
        #expect(registry.isEmpty)
    }

    /// A connection holds at most `maxRegistrations`, under one token as under many; past it a
    /// request is simply not cancellable, and room comes back as registrations go.
    @Test func registrationsAreBoundedUnderOneToken() {
        let registry = CancellationRegistry()
        let held = (0..<CancellationRegistry.maxRegistrations).map { _ in Self.request("T", in: registry).onCancel {} }
        let ran = Mutex(false)
        let past = Self.request("T", in: registry).onCancel { ran.withLock { $0 = true } }
        for registration in held { registration.remove() }
        #expect(registry.isEmpty, "the one past the bound holds nothing")
        past.remove()
        let again = Self.request("T", in: registry).onCancel { ran.withLock { $0 = true } }
        #expect(registry.cancel("T") != nil)
        #expect(ran.withLock { $0 })
        again.remove()
    }
}
