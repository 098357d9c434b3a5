import Foundation
import PackagePlugin

/// Compiles `config/conduit.yaml` into the host as a string, so the embedded default is
/// found whatever the working directory and wherever the binary is installed.
@main
struct EmbedDefaultConfig: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let input = context.package.directoryURL.appending(path: "config/conduit.yaml")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedConfiguration.swift")
        return [
            .buildCommand(
                displayName: "Embedding config/conduit.yaml",
                executable: try context.tool(named: "conduit-embed-config").url,
                arguments: [input.path(), output.path()],
                inputFiles: [input],
                outputFiles: [output]
            ),
        ]
    }
}
