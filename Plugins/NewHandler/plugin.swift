import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory new-handler <Name> [--route prefix.*] [--add-route]`
///
/// Creates a handler module that builds and whose test passes: the handler at
/// Sources/Handlers/<Name>, a test over a real socket at Tests/Conduit<Name>Tests, its target
/// and test target in Package.swift, its registration in the handler catalog and, with
/// `--add-route`, its route in config/conduit.yaml (the default config every user gets). Everything is checked before anything is written: a bad name, a
/// taken name or route, or a file that exists already changes nothing and exits non-zero.
@main
struct NewHandler: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        var extractor = ArgumentExtractor(arguments)
        let routes = extractor.extractOption(named: "route")
        let addRoute = extractor.extractFlag(named: "add-route") > 0
        let names = extractor.remainingArguments
        guard names.count == 1, routes.count <= 1 else {
            throw ScaffoldError("usage: swift package --allow-writing-to-package-directory new-handler <Name> [--route prefix.*] [--add-route]")
        }
        let module = try HandlerModule(name: names[0], route: routes.first)
        let edits = try Scaffold(module: module, package: context.package.directoryURL, addRoute: addRoute).plan()
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
