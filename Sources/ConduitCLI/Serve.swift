import ArgumentParser
import ConduitHost
import ConduitKit
import ConduitNATSHandler
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `conduit serve`: runs the host until SIGINT/SIGTERM; reloads routes on SIGHUP.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the host. Prints one JSON line with port, ipcPort, host, pid and runtimeFile once it listens."
    )

    @OptionGroup var configurationOptions: ConfigurationOptions

    @Option(help: "Listen on this port (overrides the file and $CONDUIT_PORT; 0: ephemeral).")
    var port: Int?

    @Option(help: "Listen on this address (overrides the file and $CONDUIT_HOST).")
    var host: String?

    @Flag(help: ArgumentHelp(
        "Echo text and binary frames on any path without a key. Only for the Autobahn conformance suite.",
        visibility: .hidden
    ))
    var conformanceEcho = false

    func validate() throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be 0 to 65535 (0: ephemeral), not \(port)") }
    }

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        MallocTuning.apply()
        let logger = Logger.bootstrapConduit()
        let descriptors = DescriptorLimit.raise()
        if descriptors.to > descriptors.from {
            logger.info("descriptor limit raised", metadata: ["limit.before": "\(descriptors.from)", "limit": "\(descriptors.to)"])
        }
        // The one metrics bootstrap of the process; `/metrics` on the IPC port exports it.
        let prometheus = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: prometheus)
        factory.durationHistogramBuckets = HostMetrics.durationHistogramBuckets
        MetricsSystem.bootstrap(factory)
        var configuration = try configurationOptions.load()
        if let port { configuration.settings.port = port }
        if let host { configuration.settings.host = host }
        let conduit: ConduitHost
        do {
            conduit = try ConduitHost(
                configuration: configuration, catalog: CommandLineCatalog.current,
                source: .init(path: configurationOptions.config), conformanceEcho: conformanceEcho,
                metricsExposition: { prometheus.emitToBuffer() }, resources: WebResources.all,
                cluster: NATSClusterLink.factory, logger: logger
            )
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: conduit), .init(service: ReloadOnHangup(host: conduit, hangups: hangups, logger: logger)),
                .init(service: FreedMemoryReturn(budget: conduit.directory.budget)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                tasks.addTask {
                    let endpoints = try await conduit.waitUntilReady()
                    FileHandle.standardOutput.write(Data((endpoints.announceLine + "\n").utf8))
                }
                try await tasks.waitForAll()
            }
        } catch {
            printError("conduit: \(error)")
            throw ExitCode(1)
        }
    }
}

extension Logger {
    /// Logs to stderr (stdout carries the announce line); `DEBUG=conduit` turns on debug logs.
    static func bootstrapConduit() -> Logger {
        let debug = ProcessInfo.processInfo.environment["DEBUG"]?.split(separator: ",").contains { $0 == "conduit" || $0 == "*" } ?? false
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = debug ? .debug : .info
            return handler
        }
        return Logger(label: "conduit")
    }
}
