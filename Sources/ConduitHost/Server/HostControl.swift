import ConduitKit
import ConduitWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOWebSocket

/// Who asks the control plane for a change: the host itself (its start-up, SIGHUP), or an IPC
/// caller with the key it showed.
enum ControlCaller: Sendable {
    case host
    case ipc(key: String)
}

/// What the control plane can do to a running host (SPEC §6): status, pause/resume, the shared
/// key, diagnostics, reload. The runtime file is rewritten whenever what it says changes.
final class HostControl: Sendable {
    struct Status: Sendable, Codable, Equatable {
        let port: Int?
        let isActive: Bool
        let sharedKey: String

        /// A paused server's port is written as null, so callers see every key.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(port, forKey: .port)
            try container.encode(isActive, forKey: .isActive)
            try container.encode(sharedKey, forKey: .sharedKey)
        }
    }

    struct Diagnostics: Sendable, Codable {
        static let listedClients = 1000
        struct Handshakes: Sendable, Codable {
            let pending: Int
            /// `maxPendingHandshakes`, or a quarter of the descriptor limit when that is lower.
            let limit: Int
        }
        struct Handles: Sendable, Codable {
            /// Ids with an open socket.
            let ids: [String]
            let count: Int
        }
        struct RouteCounts: Sendable, Codable {
            let route: String
            let handler: String
            let stats: RouteStats.Snapshot
            /// Why the route's handler can't serve (nil while it can).
            let down: String?
            /// The handler's own counters and states (a NATS connection's, say).
            let details: [String: DiagnosticValue]?
        }
        let isActive: Bool
        let port: Int?
        let handles: Handles
        /// Connections waiting for their WebSocket handshake, and how many may.
        let handshakes: Handshakes
        /// Ids held, how many may be, and new ids past that: evicted ids away, refused ones.
        let places: ClientDirectory.Places
        let routes: [RouteCounts]
        /// The first ids the host holds by name (`listedClients` unless the request says
        /// `clients=`), or the one it names (`id=`): buffered and dropped pushes, outbound
        /// queue depth, resume.
        let clients: [ClientDirectory.ClientSnapshot]
        /// The host-wide buffer budget: its use, and drops and refusals by cause.
        let buffers: BufferBudget.Snapshot
        /// The link to other hosts (nil: a host alone).
        let cluster: [String: DiagnosticValue]?
    }

    let server: SocketServer
    let sharedKey: SharedKey
    private let directory: ClientDirectory
    private let registry: RouteRegistry
    private let cluster: (any ClusterLink)?
    private let reloadConfiguration: @Sendable () async throws -> [String]
    private let logger: Logger
    let pendingHandshakes: PendingHandshakes
    /// Set once both listeners are up; nil before (and the runtime file not written yet).
    private let endpoints = NIOLockedValueBox<Endpoints?>(nil)
    /// Start, stop, key rotation, reload and the runtime file's writes, one at a time: each
    /// answers with the state it left, never a later caller's.
    private let serial = SerialQueue()
    /// Set by the shutdown's stop: what would undo it (a start, a key or a reload queued behind
    /// it) is refused. A start queued then bound the socket server again after the shutdown, a
    /// listener nothing closed, and rewrote the runtime file the shutdown removes.
    private let shuttingDown = NIOLockedValueBox(false)

    init(
        server: SocketServer, sharedKey: SharedKey, directory: ClientDirectory, registry: RouteRegistry, cluster: (any ClusterLink)?,
        pendingHandshakes: PendingHandshakes, logger: Logger, reload: @escaping @Sendable () async throws -> [String]
    ) {
        self.logger = logger
        self.pendingHandshakes = pendingHandshakes
        self.server = server
        self.sharedKey = sharedKey
        self.directory = directory
        self.registry = registry
        self.cluster = cluster
        self.reloadConfiguration = reload
    }

    func status() async -> Status {
        let port = await server.port
        return Status(port: port, isActive: port != nil, sharedKey: sharedKey.value)
    }

    func start(for caller: ControlCaller = .host) async throws -> Status {
        try await serial.run {
            try refuse(caller)
            let wasListening = await server.port != nil
            try await server.start()
            do {
                try await publish()
            } catch {
                // Undone: the file would not name the port the server listens on.
                if !wasListening { await server.stop(code: .goingAway, reason: "paused") }
                throw error
            }
            return await status()
        }
    }

    func stop(for caller: ControlCaller = .host) async throws -> Status {
        try await serial.run {
            try refuse(caller)
            // The file first: a stop it can't record is not made (the server stopped all the
            // same, and the file named a port nothing listened on). Unless what it lacks is a
            // descriptor, which stopping frees (sockets took them all: the reserve let this call
            // in, and refusing it left nothing that could): stopped, then recorded.
            var recorded = true
            do {
                try await publish(stopping: true)
            } catch let error as RuntimeFileError where error.isOutOfDescriptors {
                recorded = false
            }
            await server.stop(code: .goingAway, reason: "paused")
            if !recorded { try await publish(stopping: true) }
            return await status()
        }
    }

    /// Stops the socket server for good: the host is shutting down.
    func stopForShutdown() async {
        _ = try? await serial.run {
            shuttingDown.withLockedValue { $0 = true }
            await server.stop(code: .goingAway, reason: "host shutting down")
            try await publish()
        }
    }

    func setSharedKey(_ key: String, for caller: ControlCaller = .host) async throws -> Status {
        try await serial.run {
            try refuse(caller)
            let previous = sharedKey.value
            try sharedKey.rotate(to: key)
            do {
                try await publish()
            } catch {
                // Undone: the file (which the CLI reads) would hold a key that opens nothing.
                try? sharedKey.rotate(to: previous)
                throw error
            }
            return await status()
        }
    }

    /// The start-up's start of the handlers, in turn with reloads: a reload (SIGHUP) while it
    /// ran stopped routes it had not started yet, which it then started, out of every table.
    func startHandlers(_ registry: RouteRegistry) async throws {
        try await serial.run { try await registry.startHandlers() }
    }

    /// Returns the settings the file changes, which apply at the next start.
    func reload(for caller: ControlCaller = .host) async throws -> [String] {
        try await serial.run {
            try refuse(caller)
            return try await reloadConfiguration()
        }
    }

    /// A change is refused once the host shuts down (a stop too: it rewrote the runtime file
    /// after the shutdown removed it, leaving the key in a stale file), and to a caller whose key
    /// was rotated away while its call waited in the queue: checked only on its request's head,
    /// a call sent with the old key after a rotation was asked for ran after it and set a key
    /// of its own.
    private func refuse(_ caller: ControlCaller) throws(ConduitError) {
        guard !shuttingDown.withLockedValue({ $0 }) else { throw .unavailable("the host is shutting down") }
        if case .ipc(let key) = caller, !sharedKey.matches(key) {
            throw .forbidden("the shared key this call showed was changed while it waited for the calls before it")
        }
    }

    /// `listing`: the ids `clients` shows (`handles` and `places` count them all).
    func diagnostics(listing: ClientDirectory.Listing = .first(Diagnostics.listedClients)) async -> Diagnostics {
        let port = await server.port
        let clients = directory.snapshot(listing: listing)
        let connected = directory.connectedIDs
        return Diagnostics(
            isActive: port != nil, port: port, handles: .init(ids: connected, count: connected.count),
            handshakes: .init(pending: pendingHandshakes.count, limit: pendingHandshakes.limit), places: directory.places,
            routes: registry.table.routes.map { .init(route: $0.entry.route, handler: $0.entry.handler, stats: $0.stats.snapshot, down: $0.handler.health.downReason, details: $0.handler.diagnostics) },
            clients: clients, buffers: directory.budget.snapshot, cluster: cluster?.diagnostics
        )
    }

    /// Records where the host is and writes the runtime file (later changes rewrite it), and
    /// returns it as written: with the port the server has now, null if a stop came between
    /// the start and this (returned as given, the announce line named a port nothing listened on).
    func announce(_ announced: Endpoints) async throws -> Endpoints {
        try await serial.run {
            endpoints.withLockedValue { $0 = announced }
            try await publish()
            return endpoints.withLockedValue { $0 } ?? announced
        }
    }

    var announced: Endpoints? { endpoints.withLockedValue { $0 } }

    /// Rewrites the runtime file with the current port (null while paused, or `stopping`) and key.
    private func publish(stopping: Bool = false) async throws {
        let port = stopping ? nil : await server.port
        guard let current = endpoints.withLockedValue({ $0 }) else { return }
        do {
            try RuntimeFile(port: port, ipcPort: current.ipcPort, host: current.host, pid: current.pid, sharedKey: sharedKey.value)
                .write(to: current.runtimeFile)
        } catch let error as RuntimeFileError where !RuntimeFile.exists(at: current.runtimeFile) {
            // No file is left to contradict the change (a logout removes `$XDG_RUNTIME_DIR`
            // with it). Refused, it left the server unpausable and a leaked key unrevocable.
            logger.warning("the runtime file is gone and can't be written again: the change is made, no file records it", metadata: ["error": "\(error)"])
        }
        // Only what the file says: the endpoints are the file's.
        endpoints.withLockedValue { $0?.port = port }
    }
}
