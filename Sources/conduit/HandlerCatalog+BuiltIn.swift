import ConduitAIStream
import ConduitEcho
import ConduitHost
import ConduitKit
import ConduitProcess
import ConduitTLS
import ConduitUDP

extension HandlerCatalog {
    /// Every handler kind this executable knows: one line per module.
    static let builtIn = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(UDPHandler.self, name: "udp"),
        HandlerKind(ProcessHandler.self, name: "process"),
        HandlerKind(TLSHandler.self, name: "tls"),
        HandlerKind(AIStreamHandler.self, name: "ai"),
    ])
}
