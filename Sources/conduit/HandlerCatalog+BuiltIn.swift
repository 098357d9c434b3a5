import ConduitEcho
import ConduitHost
import ConduitKit
import ConduitTLS

extension HandlerCatalog {
    /// Every handler kind this executable knows: one line per module.
    static let builtIn = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(TLSHandler.self, name: "tls"),
    ])
}
