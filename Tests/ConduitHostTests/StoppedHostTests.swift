import ConduitKit
@testable import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

/// A host that stopped lets go of what it ran: its client directory, and its route table with
/// the handlers in it. The directory held the host's client-event closure, which held the route
/// registry, whose maker of handler contexts held the directory: a cycle, so every host that
/// ran in a process stayed in memory with its routes and handlers (about 16 KB with one echo
/// route, under LeakSanitizer), for an application that restarts an embedded host, each time.
@Suite("A stopped host", .timeLimit(.minutes(2)))
struct StoppedHostTests {
    /// Weak references to a host's parts, read once it stopped.
    private final class Parts: @unchecked Sendable {
        private let lock = NSLock()
        private var references: [(name: String, object: () -> AnyObject?)] = []

        func watch(_ name: String, _ object: AnyObject) {
            weak let weakObject = object
            lock.withLock { references.append((name, { weakObject })) }
        }

        var alive: [String] { lock.withLock { references.filter { $0.object() != nil }.map(\.name) } }
    }

    @Test(arguments: [false, true])
    func letsGoOfItsDirectoryRoutesAndHandlers(afterServingAClient: Bool) async throws {
        let parts = Parts()
        let yaml = "routes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            parts.watch("host", host.host)
            parts.watch("directory", host.host.directory)
            parts.watch("registry", host.host.registry)
            parts.watch("route table", host.host.registry.table)
            guard afterServingAClient else { return }
            let client = try await host.connect(client: "served")
            let reply = try await client.request(Message(headers: ["route": "echo"], payload: ByteBuffer(string: "hello")))
            #expect(String(buffer: reply.payload) == "hello")
        }
        try await expectLetGo(parts)
    }

    /// An id congested when the host stopped kept the callback of what waited for room in it,
    /// and that callback (a handler's connection, here the directory itself) the directory.
    @Test func letsGoOfAnIDWithACallbackWaitingForRoom() async throws {
        let parts = Parts()
        let yaml = "limits:\n  pushBufferMessages: 2\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            let directory = host.host.directory
            let away = try #require(ClientID("away"))
            parts.watch("directory", directory)
            parts.watch("registry", host.host.registry)
            for _ in 0..<2 { _ = directory.push(Message(headers: ["route": "news"]), to: away, delivery: .reliable) }
            #expect(directory.isCongested(away))
            directory.whenWritable(away) { _ = directory.isCongested(away) }
        }
        try await expectLetGo(parts)
    }

    /// An id away when the host stopped kept the directory's sweep scheduled for the end of its
    /// grace period, and the sweep the directory: the stopped host stayed until then.
    @Test func letsGoBeforeAnAwayIDsGracePeriodEnds() async throws {
        let parts = Parts()
        let yaml = "limits:\n  clientGraceSeconds: 600\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .hostTests) { host in
            parts.watch("directory", host.host.directory)
            parts.watch("registry", host.host.registry)
            // A push to an id without a socket buffers it there, and starts the id's grace period.
            let away = try #require(ClientID("away"))
            #expect(host.host.directory.push(Message(headers: ["route": "news"]), to: away, delivery: .reliable) == .buffered)
        }
        try await expectLetGo(parts)
    }

    /// Let go as the shutdown's last tasks end.
    private func expectLetGo(_ parts: Parts) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !parts.alive.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(parts.alive.isEmpty, "still in memory after the host stopped: \(parts.alive)")
    }
}
