import ConduitAIStream
import ConduitEcho
public import ConduitHost
import ConduitKit
import ConduitNATSHandler
import ConduitProcess
import ConduitTLS
import ConduitUDP

extension HandlerCatalog {
    /// Every handler kind the host ships: one line per module.
    public static let builtIn = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(UDPHandler.self, name: "udp"),
        HandlerKind(ProcessHandler.self, name: "process"),
        HandlerKind(TLSHandler.self, name: "tls"),
        HandlerKind(AIStreamHandler.self, name: "ai"),
        HandlerKind(NATSHandler.self, name: "nats"),
    ])
}
