import ArgumentParser
import ConduitClient
import ConduitHost
import Foundation
import Logging
import ServiceLifecycle

/// `conduit demo udp|ai`: starts a host on the embedded (or given) configuration, drives one
/// scenario end to end with the Swift client over a real socket, prints what flows, and stops.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a host and show a scenario end to end: UDP datagrams or an AI token stream.",
        subcommands: [UDPDemo.self, AIDemo.self]
    )
}

extension Demo {
    /// Runs a host from `options` (logging only warnings), connects a client as `id`, runs
    /// `scenario`, then closes the client and shuts the host down.
    static func withHostAndClient(
        _ options: ConfigurationOptions, id: String,
        _ scenario: @Sendable (ConduitClient.Conduit) async throws -> Void
    ) async throws {
        var logger = Logger(label: "conduit.demo")
        logger.logLevel = .warning
        let host: ConduitHost
        do {
            host = try ConduitHost(configuration: try options.load(), catalog: CommandLineCatalog.current, source: .init(path: options.config), logger: logger)
        } catch let error as ConfigurationError {
            printError(error.description)
            throw ExitCode(1)
        }
        let group = ServiceGroup(services: [host], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            let endpoints = try await host.waitUntilReady()
            say("host: ws://\(endpoints.host):\(endpoints.port ?? 0), IPC port \(endpoints.ipcPort ?? 0)")
            let client = ConduitClient.Conduit(
                id: id, sharedKey: host.sharedKey.value, host: endpoints.host, port: endpoints.port, ipcPort: endpoints.ipcPort)
            do {
                try await client.connect()
                say("client '\(id)' connected")
                try await scenario(client)
            } catch {
                client.close()
                await group.triggerGracefulShutdown()
                throw error
            }
            client.close()
            await group.triggerGracefulShutdown()
            try await tasks.next()
        }
    }
}


/// Writes to stdout unbuffered, so streamed tokens and whole lines appear in the order made.
func say(_ text: String, newline: Bool = true) {
    FileHandle.standardOutput.write(Data((newline ? text + "\n" : text).utf8))
}
