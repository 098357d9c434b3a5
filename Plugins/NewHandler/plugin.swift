import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory new-handler <Name> [--route prefix.*]`
///
/// Creates a handler module that builds and whose test passes: the handler at
/// Sources/Handlers/<Name>, a test over a real socket at Tests/Conduit<Name>Tests, its target
/// and test target in Package.swift, its registration in the handler catalog and its route in
/// config/conduit.yaml. Everything is checked before anything is written: a bad name, a
/// taken name or route, or a file that exists already changes nothing and exits non-zero.
@main
struct NewHandler: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        var extractor = ArgumentExtractor(arguments)
        let routes = extractor.extractOption(named: "route")
        let names = extractor.remainingArguments
        guard names.count == 1, routes.count <= 1 else {
            throw ScaffoldError("usage: swift package --allow-writing-to-package-directory new-handler <Name> [--route prefix.*]")
        }
        let module = try HandlerModule(name: names[0], route: routes.first)
        let edits = try Scaffold(module: module, package: context.package.directoryURL).plan()
        try edits.apply()
        print("Created handler '\(module.kind)' (\(module.handlerType), route \(module.route)):")
        for path in edits.paths { print("  \(path)") }
        print("Next: swift build --target \(module.testTarget) && swift test --filter \(module.testTarget)")
    }
}

struct ScaffoldError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
