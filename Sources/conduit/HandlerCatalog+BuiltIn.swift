import ConduitAIStream
import ConduitEcho
import ConduitHost
import ConduitKit

extension HandlerCatalog {
    /// Every handler kind this executable knows: one line per module.
    static let builtIn = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(AIStreamHandler.self, name: "ai"),
    ])
}
