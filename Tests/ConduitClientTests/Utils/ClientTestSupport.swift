import ConduitClient
import ConduitEcho
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

extension HandlerCatalog {
    static let clientTests = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(SilentHandler.self, name: "silent"),
    ])
}

extension TestHost {
    /// The echo route and a route that never answers.
    static let clientYAML = "routes:\n  - route: echo\n    handler: echo\n  - route: silent\n    handler: silent\n"

    /// A client of this host with its socket and IPC ports; quick retries keep tests short.
    func client(
        id: String, port: Int? = nil, ipc: Bool = true, key: String? = nil, autoReconnect: Bool = true, resume: Bool = false,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) -> Conduit {
        Conduit(
            id: id,
            address: HostAddress(port: port ?? self.port, ipcPort: ipc ? endpoints.ipcPort : nil, sharedKey: key ?? sharedKey),
            backoff: Backoff(retries: 40, initialDelay: .milliseconds(50), maxDelay: .milliseconds(500)),
            autoReconnect: autoReconnect, resume: resume, group: group
        )
    }
}

/// Records a client's events and the messages its receive handler gets, for tests to wait on.
final class Recorder: Sendable {
    private let recorded: NIOLockedValueBox<(events: [ConduitEvent], messages: [Message], ended: Bool)>

    init(_ conduit: Conduit) {
        let stream = conduit.events()
        let recorded = NIOLockedValueBox<(events: [ConduitEvent], messages: [Message], ended: Bool)>(([], [], false))
        self.recorded = recorded
        Task {
            for await event in stream { recorded.withLockedValue { $0.events.append(event) } }
            recorded.withLockedValue { $0.ended = true }
        }
        conduit.receive { message in recorded.withLockedValue { $0.messages.append(message) } }
    }

    var events: [ConduitEvent] { recorded.withLockedValue { $0.events } }
    var messages: [Message] { recorded.withLockedValue { $0.messages } }
    var ended: Bool { recorded.withLockedValue { $0.ended } }

    func count(_ predicate: (ConduitEvent) -> Bool) -> Int { events.filter(predicate).count }

    /// Waits until `predicate` has matched `times` events in all. Generous: the resume chaos
    /// test waits here after each disruption, in a loaded full run; on a timeout it says what
    /// the client saw last.
    func waitFor(_ times: Int = 1, _ predicate: @escaping @Sendable (ConduitEvent) -> Bool) async throws {
        do {
            try await waitUntil(timeout: .seconds(60)) { self.count(predicate) >= times }
        } catch {
            print("waited in vain for \(times) matching events (\(count(predicate)) came); the last events: \(events.filter { if case .message = $0 { false } else { true } }.suffix(12))")
            throw error
        }
    }

    func waitForMessages(_ count: Int) async throws {
        try await waitUntil(timeout: .seconds(20)) { self.messages.count >= count }
    }
}

extension ConduitEvent {
    var isOpen: Bool { if case .open = self { true } else { false } }
    var isReopen: Bool { if case .reopen = self { true } else { false } }
    var isClose: Bool { if case .close = self { true } else { false } }
    var willReconnect: Bool? { if case .close(_, _, let again) = self { again } else { nil } }
}
