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

/// `GET /metrics`: a host given a Prometheus registry (and a factory writing to it; no global
/// bootstrap in tests) exports its counters and the handler latency histogram.
@Suite("IPC metrics", .serialized, .timeLimit(.minutes(1)))
struct MetricsTests {
    @Test func metricsExportRouteTrafficErrorsLatencyAndDrops() async throws {
        let prometheus = PrometheusCollectorRegistry()
        let environment = [
            "CONDUIT_SHARED_KEY": "metrics-test-key", "CONDUIT_PUSH_BUFFER_MESSAGES": "2",
            "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-test-\(UUID().uuidString).json",
        ]
        let configuration = try ConfigurationLoader(environment: environment).load(yaml: "routes:\n  - route: echo\n    handler: echo\n", file: "<test>")
        let logger = Logger(label: "conduit.test", factory: { _ in SwiftLogNoOpLogHandler() })
        let host = try ConduitHost(
            configuration: configuration, catalog: .ipcTests,
            metrics: HostMetrics(factory: PrometheusMetricsFactory(registry: prometheus)), prometheus: prometheus, logger: logger
        )
        let group = ServiceGroup(services: [host], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let endpoints = try await host.waitUntilReady()
            let ipc = IPCClient(port: endpoints.ipcPort!, key: "metrics-test-key")
            _ = try await ipc.request(.POST, "/echo", body: ByteBuffer(string: "12345"))
            _ = try await ipc.request(.GET, "/nothing.here")
            for n in 1...5 { host.directory.push(numberedPush(n), to: .init("3")!) }

            let text = try await ipc.request(.GET, "/metrics").text
            #expect(text.contains(#"conduit_route_messages_total{route="echo",direction="in"} 1"#), "\(text)")
            #expect(text.contains(#"conduit_route_bytes_total{route="echo",direction="out"} 5"#))
            #expect(text.contains(#"conduit_errors_total{type="NotFoundError"} 1"#))
            #expect(text.contains(#"conduit_handler_duration_seconds_count{route="echo"} 1"#))
            #expect(text.contains("conduit_push_buffer_dropped_total 3"))
            #expect(text.contains("# TYPE conduit_handler_duration_seconds histogram"))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
