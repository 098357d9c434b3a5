import Logging
public import ServiceLifecycle
import UnixSignals

/// Reloads the route table on SIGHUP (SPEC §4); a bad file is logged and the old table stays.
public struct ReloadOnHangup: Service {
    private let host: ConduitHost
    private let logger: Logger

    public init(host: ConduitHost, logger: Logger) {
        self.host = host
        self.logger = logger
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                try await host.reload()
            } catch {
                logger.error("reload refused; the previous route table stays", metadata: ["error": "\(error)"])
            }
        }
    }
}
