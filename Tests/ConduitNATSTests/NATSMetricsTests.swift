import ConduitHost
import ConduitNATS
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Prometheus
import Testing

/// SPEC §10: metrics show a `nats` route's connection state, its messages in and out and its
/// errors, in the host's metrics (a Prometheus registry given to the host, as `conduit serve` does).
@Suite(.serialized) struct NATSMetricsTests {
    /// The value of the sample named `name` with `labels` in the registry's exposition, if any.
    private static func sample(_ name: String, _ labels: String, in registry: PrometheusCollectorRegistry) -> Double? {
        let prefix = "\(name){\(labels)} "
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let line = String(decoding: buffer, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(prefix) }
        return line.flatMap { Double($0.dropFirst(prefix.count)) }
    }

    @Test func aRoutesConnectionAndTrafficAreInTheHostsMetrics() async throws {
        try await NATSServerProcess.run { server in
            let worker = try await NATSRouteTests.worker(server)
            try await NATSClientTests.answer(on: "work.echo", with: worker) { $0.payload }
            let registry = PrometheusCollectorRegistry()
            let metrics = HostMetrics(factory: PrometheusMetricsFactory(registry: registry))
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests, metrics: metrics) { host in
                try await NATSRouteTests.routeIsUp(host)
                let client = try await host.connect()
                for n in 0..<3 {
                    let reply = try await client.request(Message(headers: ["route": "work.echo", "token": "m\(n)"], payload: ByteBuffer(string: "x")))
                    #expect(String(buffer: reply.payload) == "x")
                }
                // Nobody subscribes to this subject: an error, counted.
                let unanswered = try await client.request(Message(headers: ["route": "work.nobody", "token": "n"]))
                #expect(unanswered.headers["error"] != nil)
                // The route's own counts (its diagnostics), which nothing moves from here on,
                // reach the metrics within a second or so.
                let details = try await NATSRouteTests.routeDetails(host)
                let counted: [(metric: String, detail: String)] = [
                    ("conduit_nats_messages_out_total", "nats.messagesOut"), ("conduit_nats_messages_in_total", "nats.messagesIn"),
                    ("conduit_nats_no_responders_total", "nats.noResponders"),
                ]
                let expected = counted.map { pair -> Double in
                    guard case .number(let value) = details[pair.detail] else { return -1 }
                    return Double(value)
                }
                #expect(expected[0] >= 4 && expected[1] >= 3 && expected[2] >= 1, "\(details)")
                // Payload bytes both ways, as docs/nats.md says (bytesOut counted the headers
                // too), and the malformed count the docs list (it was missing).
                #expect(details["nats.bytesOut"] == .number(3) && details["nats.bytesIn"] == .number(3), "\(details)")
                #expect(details["nats.malformedMessages"] == .number(0), "\(details)")
                let owner = #"owner="work.*""#
                try await waitUntil(timeout: .seconds(20)) {
                    Self.sample("conduit_nats_connected", owner, in: registry) == 1
                        && counted.map { Self.sample($0.metric, owner, in: registry) } == expected
                }
                server.stop()
                try await waitUntil(timeout: .seconds(20)) { Self.sample("conduit_nats_connected", owner, in: registry) == 0 }
            }
            await worker.close()
        }
    }

    /// A route a reload removed kept its NATS series in /metrics for good, `connected` at 0 (an
    /// alert for a route that no longer exists). They go with the route now; a reload that only
    /// changes its options keeps them (the new handler makes the same series).
    @Test func aRouteTheReloadRemovesTakesItsSeriesAlong() async throws {
        try await NATSServerProcess.run { server in
            let registry = PrometheusCollectorRegistry()
            let metrics = HostMetrics(factory: PrometheusMetricsFactory(registry: registry))
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests, metrics: metrics) { host in
                let owner = #"owner="work.*""#
                try await waitUntil(timeout: .seconds(20)) { Self.sample("conduit_nats_connected", owner, in: registry) == 1 }
                try NATSRouteTests.yaml(server, timeoutSeconds: 5).write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
                try await host.host.reload()
                try await NATSRouteTests.routeIsUp(host)
                try await waitUntil(timeout: .seconds(20)) { Self.sample("conduit_nats_connected", owner, in: registry) == 1 }
                let other = "routes:\n  - route: other.*\n    handler: nats\n    options: {url: \"\(server.url)\"}\n"
                try other.write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
                try await host.host.reload()
                #expect(Self.sample("conduit_nats_connected", owner, in: registry) == nil)
                #expect(Self.sample("conduit_nats_messages_out_total", owner, in: registry) == nil)
            }
        }
    }
}
