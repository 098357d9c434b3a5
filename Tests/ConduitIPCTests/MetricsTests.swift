import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Prometheus
import ServiceLifecycle
import Testing

/// Host options the IPC listener serves: `GET /metrics` from an injected Prometheus registry
/// (with a factory writing to it; no global bootstrap in tests), and static resources. Three
/// minutes: 120 IPC requests in a row took over one on a machine loaded beside the suite.
@Suite("IPC metrics and static resources", .serialized, .timeLimit(.minutes(3)))
struct MetricsTests {
    static let key = "metrics-test-key"

    /// Runs a host built with `metrics`, `prometheus` and `resources` around `body`.
    private func withHost(
        metrics: HostMetrics = HostMetrics(), prometheus: PrometheusCollectorRegistry? = nil,
        resources: [String: StaticResource] = [:], yaml: String = "routes:\n  - route: echo\n    handler: echo\n",
        configurationFile file: String = NSTemporaryDirectory() + "conduit-metrics-\(UUID().uuidString).yaml",
        _ body: (ConduitHost, IPCClient) async throws -> Void
    ) async throws {
        let environment = [
            "CONDUIT_SHARED_KEY": Self.key, "CONDUIT_PUSH_BUFFER_MESSAGES": "2",
            "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-test-\(UUID().uuidString).json",
        ]
        let loader = ConfigurationLoader(environment: environment)
        let configuration = try loader.load(yaml: yaml, file: "<test>")
        // Reloads read the test's own table: written where the test can change it.
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let logger = Logger(label: "conduit.test", factory: { _ in SwiftLogNoOpLogHandler() })
        var exposition: (@Sendable () -> [UInt8])?
        if let prometheus { exposition = { prometheus.emitToBuffer() } }
        let host = try ConduitHost(
            configuration: configuration, catalog: .ipcTests, source: .init(path: file, loader: loader), metrics: metrics,
            metricsExposition: exposition, resources: resources, logger: logger
        )
        let group = ServiceGroup(services: [host], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let endpoints = try await host.waitUntilReady()
            do {
                try await body(host, IPCClient(port: endpoints.ipcPort!, key: Self.key))
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test func metricsExportRouteTrafficErrorsLatencyAndDrops() async throws {
        let prometheus = PrometheusCollectorRegistry()
        try await withHost(metrics: HostMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), prometheus: prometheus) { host, ipc in
            _ = try await ipc.request(.POST, "/echo", body: ByteBuffer(string: "12345"))
            _ = try await ipc.request(.GET, "/nothing.here")
            for n in 1...5 { host.directory.push(numberedPush(n), to: .init("3")!) }

            let text = try await ipc.request(.GET, "/metrics").text
            #expect(text.contains(#"conduit_route_messages_total{route="echo",direction="in"} 1"#), "\(text)")
            #expect(text.contains(#"conduit_route_bytes_total{route="echo",direction="out"} 5"#))
            #expect(text.contains(#"conduit_errors_total{type="NotFoundError"} 1"#))
            #expect(text.contains(#"conduit_handler_duration_seconds_count{route="echo"} 1"#))
            #expect(text.contains(#"conduit_dropped_total{cause="queue-full"} 3"#))
            #expect(text.contains("conduit_buffered_bytes "), "the budget in use")
            #expect(text.contains("# TYPE conduit_handler_duration_seconds histogram"))
        }
    }

    /// IPC answers the host made itself were not counted in `conduit_errors_total`, as the
    /// socket's are: a request refused before any handler saw it, a control route's error.
    @Test func errorsTheIPCListenerAnswersAreCounted() async throws {
        let prometheus = PrometheusCollectorRegistry()
        try await withHost(metrics: HostMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), prometheus: prometheus) { _, ipc in
            #expect(try await ipc.request(.POST, "/echo?id=not%20an%20id").status == .badRequest)
            #expect(try await ipc.request(.POST, "/internal.conduit.setSharedKey?sharedKey=short").status == .badRequest)
            // Refused at the head for its size, before the body is read: it was not counted.
            #expect(try await ipc.request(.POST, "/internal.conduit.stop", body: ByteBuffer(repeating: 1, count: 5000)).status == .payloadTooLarge)
            // An echo that can't be framed (254 headers and the reply's own) is InternalError:
            // counted as the handler's success it began as.
            let query = (0..<254).map { "p\($0)=x" }.joined(separator: "&")
            #expect(try await ipc.request(.POST, "/echo?\(query)").status == .internalServerError)
            let text = try await ipc.request(.GET, "/metrics").text
            #expect(text.contains(#"conduit_errors_total{type="BadRequestError"} 2"#), "\(text)")
            #expect(text.contains(#"conduit_errors_total{type="PayloadTooLargeError"} 1"#), "\(text)")
            #expect(text.contains(#"conduit_errors_total{type="InternalError"} 1"#), "\(text)")
        }
    }

    /// Only two causes of a refused handshake were counted: a wrong shared key, tried again
    /// and again, left no trace in /metrics.
    @Test func refusedHandshakesAreCountedByReason() async throws {
        let prometheus = PrometheusCollectorRegistry()
        try await withHost(metrics: HostMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), prometheus: prometheus) { host, ipc in
            let port = try #require(try await host.waitUntilReady().port)
            for _ in 0..<3 { #expect(try await RawTCPClient.handshakeStatus(port: port, path: "/guess/0?key=wrong-key-123") == 403) }
            #expect(try await RawTCPClient.handshakeStatus(port: port, path: "/a/b/c?key=\(Self.key)") == 400)
            // Refused before the policy looks (`UpgradeTokenLimit`), counted as well.
            let raw = try await RawTCPClient.connect(port: port)
            try await raw.send(
                "GET /many/0?key=\(Self.key) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: a,b,c,d,e,f,g,h,websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            #expect(String(buffer: try await raw.readUntilClosed()).hasPrefix("HTTP/1.1 400 "))
            let text = try await ipc.request(.GET, "/metrics").text
            #expect(text.contains(#"conduit_handshakes_refused_total{reason="not-an-upgrade"} 1"#), "\(text)")
            #expect(text.contains(#"conduit_handshakes_refused_total{reason="key"} 3"#), "\(text)")
            #expect(text.contains(#"conduit_handshakes_refused_total{reason="bad-request"} 1"#), "\(text)")
        }
    }

    /// An IPC request refused for its key was counted nowhere, where a refused handshake is.
    @Test func ipcRequestsRefusedForTheirKeyAreCounted() async throws {
        let prometheus = PrometheusCollectorRegistry()
        try await withHost(metrics: HostMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), prometheus: prometheus) { host, ipc in
            let port = try #require(try await host.waitUntilReady().ipcPort)
            #expect(try await IPCClient(port: port, key: "wrong-key-123456").request(.POST, "/echo?id=a").status == .forbidden)
            #expect(try await IPCClient(port: port, key: nil).request(.POST, "/echo?id=a").status == .unauthorized)
            let text = try await ipc.request(.GET, "/metrics").text
            #expect(text.contains(#"conduit_ipc_requests_refused_total{reason="key"} 2"#), "\(text)")
        }
    }

    /// A reload that changed a route's options gave it new counters: diagnostics started again
    /// at 0 while /metrics went on counting the same series; a route the reload removed kept
    /// its series in /metrics for good, frozen. A route's counters go with its name now, and
    /// leave with it.
    @Test func routeCountersFollowTheRouteAcrossReloads() async throws {
        let prometheus = PrometheusCollectorRegistry()
        // Not `counting`: the control tests beside these count its instances.
        let counted = { (stop: Double) in "routes:\n  - route: counted\n    handler: hanging\n    options: {stopSeconds: \(stop)}\n" }
        let yaml = counted(0) + "  - route: gone\n    handler: echo\n"
        let file = NSTemporaryDirectory() + "conduit-metrics-\(UUID().uuidString).yaml"
        try await withHost(
            metrics: HostMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), prometheus: prometheus, yaml: yaml, configurationFile: file
        ) { host, ipc in
            for _ in 0..<3 { #expect(try await ipc.request(.POST, "/counted").status == .ok) }
            #expect(try await ipc.request(.POST, "/gone", body: ByteBuffer(string: "x")).status == .ok)
            try counted(0.01).write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try await ipc.request(.POST, "/internal.conduit.reload").status == .ok)
            #expect(try await ipc.request(.POST, "/counted").status == .ok)
            #expect(host.registry.lookup("counted")?.stats.snapshot.requests == 4, "diagnostics go on counting")
            let text = try await ipc.request(.GET, "/metrics").text
            #expect(text.contains(#"conduit_route_messages_total{route="counted",direction="in"} 4"#), "\(text)")
            #expect(!text.contains(#"route="gone""#), "the removed route's series are gone: \(text)")
        }
    }

    @Test func requestDataNeverNamesASeriesAndEchoesAreNotErrors() async throws {
        let prometheus = PrometheusCollectorRegistry()
        try await withHost(metrics: HostMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), prometheus: prometheus) { host, ipc in
            let before = try await ipc.request(.GET, "/metrics").text.utf8.count
            // Echo replies copy the request's headers, `error` included.
            for n in 0..<120 {
                _ = try await ipc.request(.POST, "/echo?error=Made-Up-\(n)", body: ByteBuffer(string: "x"))
            }
            let text = try await ipc.request(.GET, "/metrics").text
            #expect(!text.contains("Made-Up"), "no series named by request data")
            #expect(text.utf8.count < before + 4096, "the export stays the same size: \(before) → \(text.utf8.count) bytes")
            #expect(!text.contains(#"conduit_errors_total{type="other"} 120"#), "successful echoes are not errors")
        }
    }

    @Test func staticResourcesAreServedWithTheKeyOnly() async throws {
        let script = StaticResource(contentType: "text/javascript; charset=utf-8", body: ByteBuffer(string: "export const conduit = 1\n"))
        try await withHost(resources: ["/conduit.js": script]) { host, ipc in
            let response = try await ipc.request(.GET, "/conduit.js")
            #expect(response.status == .ok)
            #expect(response.headers["content-type"] == ["text/javascript; charset=utf-8"])
            #expect(response.text == "export const conduit = 1\n")
            #expect(try await IPCClient(port: ipc.port, key: nil).request(.GET, "/conduit.js").status == .unauthorized)
            #expect(try await ipc.request(.GET, "/metrics").status == .notFound, "no registry given: no metrics")
        }
    }
}
