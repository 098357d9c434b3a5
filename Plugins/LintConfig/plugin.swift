import Foundation
import PackagePlugin

/// `swift package lint-config [FILE…]`: builds `conduit` and runs `conduit check` on each file
/// (default: every config/**/*.yaml), so a broken route table is reported with
/// file:line:column before anything is served. Exits non-zero when any file fails.
///
/// It runs the real checker rather than re-implementing it: plugins cannot import the
/// package's library targets.
@main
struct LintConfig: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        let build = try packageManager.build(.product("conduit"), parameters: .init(configuration: .debug))
        guard build.succeeded,
              let conduit = build.builtArtifacts.first(where: { $0.kind == .executable && $0.url.lastPathComponent == "conduit" }) else {
            throw LintError("building conduit failed:\n\(build.logText)")
        }
        let root = context.package.directoryURL
        let files = arguments.isEmpty ? try Self.configFiles(under: root) : arguments
        var failed: [String] = []
        for file in files {
            let check = Process()
            check.executableURL = conduit.url
            check.arguments = ["check", file]
            check.currentDirectoryURL = root
            try check.run()
            check.waitUntilExit()
            if check.terminationStatus != 0 { failed.append(file) }
        }
        guard failed.isEmpty else {
            throw LintError("\(failed.count) of \(files.count) configuration files are invalid: \(failed.joined(separator: ", "))")
        }
    }

    /// Every .yaml under config/, as paths relative to the package, sorted.
    private static func configFiles(under root: URL) throws -> [String] {
        let config = root.appending(path: "config")
        guard let walker = FileManager.default.enumerator(atPath: config.path) else {
            throw LintError("there is no config/ directory in \(root.path)")
        }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") }.sorted().map { "config/\($0)" }
    }
}

struct LintError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
