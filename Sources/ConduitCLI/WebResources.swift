import ConduitHost
import NIOCore

/// What the IPC listener serves besides routes (SPEC §6): the status page at `/` and the
/// JavaScript client at `/conduit.js`, both compiled in from Sources/ConduitCLI/Web.
enum WebResources {
    static let all: [String: StaticResource] = [
        "/": StaticResource(contentType: "text/html; charset=utf-8", body: ByteBuffer(string: EmbeddedWeb.statusPage)),
        "/conduit.js": StaticResource(contentType: "text/javascript; charset=utf-8", body: ByteBuffer(string: EmbeddedWeb.client)),
    ]
}
