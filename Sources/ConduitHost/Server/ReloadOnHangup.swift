import Logging
public import ServiceLifecycle
public import UnixSignals

/// Reloads the route table on SIGHUP (SPEC §4); a bad file is logged and the old table stays.
public struct ReloadOnHangup: Service {
    private let host: ConduitHost
    private let hangups: UnixSignalsSequence
    private let logger: Logger

    /// `hangups` traps SIGHUP from its making: made first thing at start-up, a SIGHUP while the
    /// configuration loads waits to reload it (until it was trapped here, SIGHUP's default
    /// action ended the process: a reload sent early killed a host still starting).
    public init(host: ConduitHost, hangups: UnixSignalsSequence, logger: Logger) {
        self.host = host
        self.hangups = hangups
        self.logger = logger
    }

    public func run() async throws {
        for await _ in hangups.cancelOnGracefulShutdown() {
            do {
                try await host.reload()
            } catch {
                logger.error("reload refused; the previous route table stays", metadata: ["error": "\(error)"])
            }
        }
    }
}
