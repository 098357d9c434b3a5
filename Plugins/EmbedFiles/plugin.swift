import Foundation
import PackagePlugin

/// Compiles text files into a target as strings, so they are found whatever the working
/// directory and wherever the binary is installed: the default configuration into the host,
/// the JavaScript client and the status page into the CLI.
@main
struct EmbedFiles: BuildToolPlugin {
    /// Per target: the generated enum and its properties' names → files relative to the package.
    static let embedded: [String: (enumName: String, files: [(name: String, path: String)])] = [
        "ConduitHost": ("EmbeddedConfiguration", [("yaml", "config/conduit.yaml")]),
        "ConduitCLI": ("EmbeddedWeb", [("client", "Sources/ConduitCLI/Web/conduit.js"), ("statusPage", "Sources/ConduitCLI/Web/status.html")]),
    ]

    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        guard let (enumName, files) = Self.embedded[target.name] else { return [] }
        let inputs = files.map { context.package.directoryURL.appending(path: $0.path) }
        let output = context.pluginWorkDirectoryURL.appending(path: "\(enumName).swift")
        // Paths as they are: `path()` percent-encodes, and a package under "My Projects" failed to build.
        let pairs = zip(files, inputs).map { "\($0.name)=\($1.path(percentEncoded: false))" }
        return [
            .buildCommand(
                displayName: "Embedding \(files.map(\.path).joined(separator: ", "))",
                executable: try context.tool(named: "conduit-embed-files").url,
                arguments: [output.path(percentEncoded: false), enumName] + pairs,
                inputFiles: inputs,
                outputFiles: [output]
            ),
        ]
    }
}
