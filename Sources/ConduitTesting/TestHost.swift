public import ConduitHost
public import ConduitKit
import Foundation
public import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Runs a real `ConduitHost` on an ephemeral port for the length of a test.
public struct TestHost: Sendable {
    public let host: ConduitHost
    public let endpoints: Endpoints
    /// The YAML file reloads read (write a new table there, then reload).
    public let configurationFile: String

    /// The socket server's port.
    public var port: Int { endpoints.port! }
    public var sharedKey: String { host.sharedKey.value }

    /// The key every TestHost uses unless the YAML or environment sets another.
    public static let defaultKey = "test-shared-key"

    /// Starts a host from `yaml` (the route table and settings), runs `body`, then shuts the
    /// host down gracefully. The runtime file goes to a unique temporary path. `duringStartUp`
    /// runs while the host starts (its handlers, its listeners), before it is ready.
    public static func run<Result: Sendable>(
        yaml: String = "routes:\n  - route: echo\n    handler: echo\n",
        catalog: HandlerCatalog,
        environment: [String: String] = [:],
        cluster: ClusterLinkFactory? = nil,
        metrics: HostMetrics = HostMetrics(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "conduit.test", factory: { _ in SwiftLogNoOpLogHandler() }),
        duringStartUp: (@Sendable (_ host: ConduitHost, _ configurationFile: String) async throws -> Void)? = nil,
        _ body: @Sendable (TestHost) async throws -> Result
    ) async throws -> Result {
        var environment = environment
        environment["CONDUIT_SHARED_KEY"] = environment["CONDUIT_SHARED_KEY"] ?? defaultKey
        environment["CONDUIT_RUNTIME_FILE"] = environment["CONDUIT_RUNTIME_FILE"]
            ?? NSTemporaryDirectory() + "conduit-test-\(UUID().uuidString).json"
        let loader = ConfigurationLoader(environment: environment)
        let configuration = try loader.load(yaml: yaml, file: "<test>")
        // Reloads read the test's own table again, not the embedded default.
        let file = NSTemporaryDirectory() + "conduit-test-\(UUID().uuidString).yaml"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let host = try ConduitHost(
            configuration: configuration, catalog: catalog, source: .init(path: file, loader: loader), group: group, metrics: metrics,
            cluster: cluster, logger: logger)
        let services = ServiceGroup(services: [host], logger: logger)
        return try await withThrowingTaskGroup(of: Result?.self) { tasks in
            tasks.addTask {
                try await services.run()
                return nil
            }
            try await duringStartUp?(host, file)
            let endpoints = try await host.waitUntilReady()
            do {
                let result = try await body(TestHost(host: host, endpoints: endpoints, configurationFile: file))
                await services.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await services.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    /// The Conduit path for an id pair with the key in the query.
    public func path(client: String = "1", window: String = "0", key: String? = nil) -> String {
        "/\(client)/\(window)?key=\(key ?? sharedKey)"
    }

    /// Opens a WebSocket as client `client`.
    public func connect(
        client: String = "1", window: String = "0", headers: HTTPHeaders = [:], receiveBufferBytes: Int? = nil
    ) async throws -> TestWebSocketClient {
        try await TestWebSocketClient.connect(
            port: port, path: path(client: client, window: window), headers: headers, receiveBufferBytes: receiveBufferBytes
        )
    }
}

extension TestHost {
    /// The directory's view of one client id.
    public func client(_ id: String) -> ClientDirectory.ClientSnapshot? {
        host.directory.snapshot.first { $0.id == id }
    }
}
