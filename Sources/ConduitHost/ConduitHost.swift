import ConduitKit
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import NIOWebSocket
import Foundation

/// The Conduit host: the WebSocket data plane, the route registry, the client directory and
/// the IPC control plane, run as one `Service` (start handlers → bind IPC → bind the socket
/// server → announce → serve → close sockets with 1001).
public final class ConduitHost: Service, Sendable {
    /// The IPC listener is always on loopback, whatever the socket server's host (SPEC §6).
    static let ipcHost = "127.0.0.1"

    public var sharedKey: SharedKey { control.sharedKey }
    /// Connections waiting for their WebSocket handshake.
    public var pendingHandshakes: Int { control.pendingHandshakes.count }
    public let registry: RouteRegistry
    /// Client ids, their sockets and push buffers; also the `PushSink` handlers get.
    public let directory: ClientDirectory
    let control: HostControl
    private let settings: HostSettings
    private let ipc: IPCListener
    private let logger: Logger
    private let ready: EventLoopPromise<Endpoints>
    private let cluster: (any ClusterLink)?
    /// Whom the directory tells of client events (it holds this weakly).
    private let clientEvents: ClientEventRelay

    /// Where reloads read the configuration from.
    public struct ConfigurationSource: Sendable {
        public var path: String?
        public var loader: ConfigurationLoader
        public init(path: String?, loader: ConfigurationLoader = ConfigurationLoader()) {
            self.path = path
            self.loader = loader
        }
    }

    /// - Parameters:
    ///   - metrics: the handles' factory (the bootstrapped one by default).
    ///   - metricsExposition: what `GET /metrics` answers, the text exposition of the process's
    ///     metrics backend (the host itself writes only to the swift-metrics API); nil: no endpoint.
    ///   - resources: files the IPC listener serves, keyed by path (`/`, `/conduit.js`).
    ///   - cluster: makes the link to other hosts when the YAML has `server.cluster`.
    public init(
        configuration: HostConfiguration,
        catalog: HandlerCatalog,
        source: ConfigurationSource = ConfigurationSource(path: nil),
        conformanceEcho: Bool = false,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        metrics: HostMetrics = HostMetrics(),
        metricsExposition: (@Sendable () -> [UInt8])? = nil,
        resources: [String: StaticResource] = [:],
        cluster makeCluster: ClusterLinkFactory? = nil,
        logger: Logger
    ) throws(ConfigurationError) {
        let settings = configuration.settings
        let budget = BufferBudget(limit: settings.hostBufferBytes, metrics: metrics)
        let clientEvents = ClientEventRelay()
        let directory = ClientDirectory(settings: settings, timers: group.next(), budget: budget) { [weak clientEvents] event in
            clientEvents?.tell(event)
        }
        let cluster = try Self.clusterLink(of: configuration, makeCluster, pushes: directory, group: group)
        clientEvents.setCluster(cluster)
        let registry = try RouteRegistry(configuration: configuration, catalog: catalog, metrics: metrics) { entry in
            // Its metrics: the registry's factory of the route, over `metrics`.
            HandlerContext(route: entry.route, logger: logger.with(metadata: ["route.name": "\(entry.route)"]), pushes: directory, eventLoopGroup: group)
        }
        clientEvents.setRegistry(registry)
        let sharedKey = SharedKey(configured: settings.sharedKey)
        if !settings.sharedKey.isEmpty, sharedKey.value != settings.sharedKey {
            // Its clients were refused 403 with no word of why; the key itself is not logged.
            logger.warning("the configured shared key is shorter than \(SharedKey.minimumBytes) bytes: a random key is used instead (see the runtime file or internal.conduit.getSharedKey)")
        }
        let services = SessionDependencies(
            settings: settings, mode: conformanceEcho ? .conformanceEcho : .conduit, registry: registry,
            directory: directory, metrics: metrics, sharedKey: sharedKey, cluster: cluster
        )
        // Waiting handshakes take at most a quarter of the descriptors: never all of them.
        let pending = PendingHandshakes(
            limit: min(settings.maxPendingHandshakes, max(1, DescriptorLimit.current / 4)), maxBytes: settings.maxHandshakeBytes,
            metrics: metrics)
        let server = SocketServer(
            listener: WebSocketListener(services: services, pending: pending, group: group, logger: logger),
            directory: directory, host: settings.host, configuredPort: settings.port
        )
        let reload = ReloadAction(source: source, startedWith: settings, registry: registry, logger: logger)
        let control = HostControl(
            server: server, sharedKey: sharedKey, directory: directory, registry: registry, cluster: cluster, pendingHandshakes: pending,
            logger: logger, reload: reload.run)
        self.settings = settings
        self.directory = directory
        self.registry = registry
        self.control = control
        self.cluster = cluster
        self.clientEvents = clientEvents
        self.logger = logger
        self.ready = group.next().makePromise()
        self.ipc = IPCListener(
            services: IPCDependencies(
                control: control, registry: registry, directory: directory, metricsExposition: metricsExposition, resources: resources,
                maxBodyBytes: settings.chunkQueueBytes, replyTimeout: .fractionalSeconds(settings.ipcReplyTimeoutSeconds),
                limits: IPCLimits(settings)
            ),
            group: group, logger: logger.with(metadata: ["listener": "ipc"])
        )
    }

    /// Resolves once both listeners are up (the announce), or fails if they could not start.
    public func waitUntilReady() async throws -> Endpoints {
        try await ready.futureResult.get()
    }

    public func run() async throws {
        let ipcServer: any Channel
        do {
            try await control.startHandlers(registry)
            try await cluster?.start()
            ipcServer = try await ipc.bind(host: Self.ipcHost, port: settings.ipcPort)
        } catch {
            await failedToStart(error)
            throw error
        }
        do {
            _ = try await control.start()
            let pid = getpid()
            let endpoints = try await control.announce(Endpoints(
                port: await control.server.port, ipcPort: ipcServer.localAddress?.port, host: settings.host, pid: pid,
                runtimeFile: settings.runtimeFile.isEmpty ? RuntimeFile.defaultPath(pid: pid) : settings.runtimeFile
            ))
            logger.info("conduit listening", metadata: [
                "server.port": "\(endpoints.port ?? 0)", "server.host": "\(settings.host)", "ipc.port": "\(endpoints.ipcPort ?? 0)",
            ])
            ready.succeed(endpoints)
        } catch {
            // Left open, a host that did not start went on answering IPC, its port held.
            await ipc.close(ipcServer)
            await failedToStart(error)
            throw error
        }
        try? await gracefulShutdown()
        await shutdown(ipcServer: ipcServer)
    }

    private func failedToStart(_ error: any Error) async {
        ready.fail(error)
        await control.stopForShutdown()
        await registry.stopHandlers(logger: logger)
        await cluster?.stop()
    }

    /// Closes every socket with 1001, stops both listeners, ends every id, stops the handlers.
    private func shutdown(ipcServer: any Channel) async {
        await control.stopForShutdown()
        await ipc.close(ipcServer)
        directory.endEveryID()
        await registry.stopHandlers(logger: logger)
        await cluster?.stop()
        if let endpoints = control.announced { unlink(endpoints.runtimeFile) }
        logger.info("conduit stopped")
    }

    /// Makes the cluster link `configuration` asks for (not started), as the host would, so
    /// that `conduit check` reports what start-up would (a bad NATS URL passed the check).
    public static func validateCluster(of configuration: HostConfiguration, _ make: ClusterLinkFactory?) throws(ConfigurationError) {
        _ = try clusterLink(of: configuration, make, pushes: DiscardingPushSink(), group: MultiThreadedEventLoopGroup.singleton)
    }

    private static func clusterLink(
        of configuration: HostConfiguration, _ make: ClusterLinkFactory?, pushes: any PushSink, group: any EventLoopGroup
    ) throws(ConfigurationError) -> (any ClusterLink)? {
        guard let settings = configuration.settings.cluster else { return nil }
        // At `server.cluster` in its file (it was a file named "server.cluster", line 1).
        let location = configuration.clusterLocation ?? SourceLocation(file: configuration.source, mark: nil)
        guard let make else {
            throw ConfigurationError(location, "this executable can't join a cluster (it was built without a cluster link)")
        }
        do {
            return try make(settings, pushes, group)
        } catch {
            throw ConfigurationError(location, "'server.cluster': \(error)")
        }
    }

    /// Reads the configuration again and swaps the route table; a bad file changes nothing.
    /// Returns the settings the file changes, by name (`limits.maxMessageBytes`): they apply at
    /// the next start, not now (logged too).
    @discardableResult
    public func reload() async throws -> [String] {
        try await control.reload()
    }
}

/// A reload: read the configuration file again and hand it to the registry. Its settings are
/// the process's (docs/configuration.md): those the file changes are named, not applied. An
/// operator who edited a limit and sent SIGHUP was told "route table reloaded" and nothing else.
private struct ReloadAction: Sendable {
    let source: ConduitHost.ConfigurationSource
    /// The settings the host started with, as read then (before a random key was made).
    let startedWith: HostSettings
    let registry: RouteRegistry
    let logger: Logger

    @Sendable func run() async throws -> [String] {
        let configuration = try source.loader.load(path: source.path, regularFileOnly: true)
        try await registry.reload(configuration, logger: logger)
        let unapplied = SettingField.changes(from: startedWith, to: configuration.settings)
        if !unapplied.isEmpty {
            logger.warning("the file changes settings that apply only when the process starts again; the running ones stay", metadata: [
                "settings": "\(unapplied.joined(separator: ", "))"
            ])
        }
        return unapplied
    }
}
