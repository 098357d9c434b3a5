import ConduitKit
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import NIOWebSocket
import NIOConcurrencyHelpers
import Foundation

/// The Conduit host: the WebSocket data plane, the route registry and the client directory,
/// run as one `Service` (start handlers → bind → announce → serve → close sockets with 1001).
public final class ConduitHost: Service, Sendable {
    public let sharedKey: SharedKey
    public let registry: RouteRegistry
    /// Client ids, their sockets and push buffers; also the `PushSink` handlers get.
    public let directory: ClientDirectory
    private let settings: HostSettings
    private let listener: WebSocketListener
    private let logger: Logger
    private let group: any EventLoopGroup
    private let configurationSource: ConfigurationSource
    private let state = NIOLockedValueBox(State())
    private let ready: EventLoopPromise<Endpoints>

    private struct State {
        var server: (any Channel)?
        var endpoints: Endpoints?
    }

    /// Where reloads read the configuration from.
    public struct ConfigurationSource: Sendable {
        public var path: String?
        public var loader: ConfigurationLoader
        public init(path: String?, loader: ConfigurationLoader = ConfigurationLoader()) {
            self.path = path
            self.loader = loader
        }
    }

    public init(
        configuration: HostConfiguration,
        catalog: HandlerCatalog,
        source: ConfigurationSource = ConfigurationSource(path: nil),
        conformanceEcho: Bool = false,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) throws(ConfigurationError) {
        let settings = configuration.settings
        let routesBox = NIOLockedValueBox<RouteRegistry?>(nil)
        let directory = ClientDirectory(settings: settings, timers: group.next()) { event in
            guard let registry = routesBox.withLockedValue({ $0 }) else { return }
            for route in registry.table.routes { route.handler.clientEvent(event) }
        }
        let registry = try RouteRegistry(configuration: configuration, catalog: catalog) { entry in
            HandlerContext(
                route: entry.route, logger: logger.with(metadata: ["route.name": "\(entry.route)"]),
                pushes: directory, eventLoopGroup: group
            )
        }
        routesBox.withLockedValue { $0 = registry }
        self.settings = settings
        self.sharedKey = SharedKey(configured: settings.sharedKey)
        self.directory = directory
        self.registry = registry
        self.logger = logger
        self.group = group
        self.configurationSource = source
        self.ready = group.next().makePromise()
        let services = SessionServices(
            settings: settings, mode: conformanceEcho ? .conformanceEcho : .conduit, registry: registry,
            directory: directory, metrics: HostMetrics(), sharedKey: sharedKey
        )
        self.listener = WebSocketListener(services: services, group: group, logger: logger)
    }

    /// Resolves once the socket server listens (the announce), or fails if it could not start.
    public func waitUntilReady() async throws -> Endpoints {
        try await ready.futureResult.get()
    }

    public func run() async throws {
        do {
            try await registry.startHandlers()
            let server = try await listener.bind(host: settings.host, port: settings.port)
            let pid = getpid()
            let endpoints = Endpoints(
                port: server.localAddress?.port, ipcPort: nil, host: settings.host, pid: pid,
                runtimeFile: settings.runtimeFile.isEmpty ? RuntimeFile.defaultPath(pid: pid) : settings.runtimeFile
            )
            try RuntimeFile(port: endpoints.port, ipcPort: nil, host: endpoints.host, pid: pid, sharedKey: sharedKey.value)
                .write(to: endpoints.runtimeFile)
            state.withLockedValue {
                $0.server = server
                $0.endpoints = endpoints
            }
            logger.info("conduit listening", metadata: ["server.port": "\(endpoints.port ?? 0)", "server.host": "\(settings.host)"])
            ready.succeed(endpoints)
        } catch {
            ready.fail(error)
            await registry.stopHandlers()
            throw error
        }
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Closes every socket with 1001, stops listening, stops the handlers.
    private func shutdown() async {
        let (server, endpoints) = state.withLockedValue { ($0.server, $0.endpoints) }
        try? await server?.close()
        await closeAllSessions(code: .goingAway, reason: "host shutting down")
        await registry.stopHandlers()
        if let endpoints { unlink(endpoints.runtimeFile) }
        logger.info("conduit stopped")
    }

    func closeAllSessions(code: WebSocketErrorCode, reason: String) async {
        let sessions = directory.sessions
        for session in sessions { session.close(code: code, reason: reason) }
        for session in sessions { try? await session.channel.closeFuture.get() }
    }

    /// Reads the configuration again and swaps the route table; a bad file changes nothing.
    public func reload() async throws {
        let configuration = try configurationSource.loader.load(path: configurationSource.path)
        try await registry.reload(configuration, logger: logger)
    }
}
