import ArgumentParser
import ConduitHost
import Foundation

/// `--config` shared by the subcommands that read a configuration.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file (default: $CONDUIT_CONFIG, else the embedded config/conduit.yaml).")
    var config: String?

    init() {}

    init(config: String) {
        self.config = config
    }

    /// Loads the configuration or exits 1 with `file:line:column: error: …` on stderr.
    func load() throws -> HostConfiguration {
        do {
            return try ConfigurationLoader().load(path: config)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
