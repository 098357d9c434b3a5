import ArgumentParser
import ConduitHost
import ConduitNATSHandler
import NIOPosix

/// `conduit check FILE`: validates a configuration as `serve` would, without serving.
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate a configuration file; exit 1 with file:line:column and the problem.")

    @Argument(help: "The configuration file to check.")
    var file: String

    func run() async throws {
        let configuration = try ConfigurationOptions(config: file).load()
        try Self.validate(configuration)
        print("\(file): ok (\(configuration.routes.count) routes)")
    }

    /// Builds every handler of the route table once, so option errors surface here.
    static func validate(_ configuration: HostConfiguration) throws {
        do {
            try RouteRegistry.validate(configuration, catalog: CommandLineCatalog.current, group: MultiThreadedEventLoopGroup.singleton)
            try ConduitHost.validateCluster(of: configuration, NATSClusterLink.factory)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}
