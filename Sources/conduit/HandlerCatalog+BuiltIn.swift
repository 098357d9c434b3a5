import ConduitEcho
import ConduitHost
import ConduitKit
import ConduitProcess

extension HandlerCatalog {
    /// Every handler kind this executable knows: one line per module.
    static let builtIn = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(ProcessHandler.self, name: "process"),
    ])
}
