import ArgumentParser
public import ConduitHost
import Synchronization

/// The `conduit` command line as a library: an executable of one's own runs it with the
/// handler kinds it knows, e.g. `await ConduitCLI.main(catalog: .builtIn + [MyHandler.kind])`
/// in a package that depends on this one, and gets `serve`, `check`, `routes` and the rest
/// for them.
public enum ConduitCLI {
    public static func main(catalog: HandlerCatalog = .builtIn) async {
        CommandLineCatalog.current = catalog
        await ConduitCommand.main()
    }
}

/// The handler kinds of this run, set once by `ConduitCLI.main` before any command runs
/// (ArgumentParser builds the commands, so they can't be handed it).
enum CommandLineCatalog {
    private static let catalog = Mutex(HandlerCatalog.builtIn)

    static var current: HandlerCatalog {
        get { catalog.withLock { $0 } }
        set { catalog.withLock { $0 = newValue } }
    }
}

struct ConduitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conduit",
        abstract: "A local WebSocket host that routes compact binary messages to handler modules.",
        subcommands: [Serve.self, Routes.self, Check.self, Status.self, Pause.self, Resume.self, Demo.self],
        defaultSubcommand: Serve.self
    )
}
