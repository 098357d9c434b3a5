import ConduitWire
import Foundation

/// An IPC request's URL, `/<route>?<headers>` (SPEC §6): the route, the query parameters in
/// order as Conduit headers (percent-decoded), and the shared key, which is never a header.
struct IPCTarget: Sendable {
    static let keyParameter = "key"

    let route: String
    let headers: Headers
    let key: String?

    init(uri: String) {
        let uri = Self.originForm(uri)
        let query = uri.firstIndex(of: "?").map { uri[uri.index(after: $0)...] } ?? ""
        route = Self.route(ofPath: uri)
        var headers = Headers()
        var key: String?
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            let value = parts.count > 1 ? parts[1] : ""
            // A `+` in the key is itself, as on the WebSocket URL: a key has no spaces, and a
            // key such as base64 text worked there and was refused (403) here.
            if name == Self.keyParameter { key = Self.percentDecode(value) } else { headers.append(name, Self.decode(value)) }
        }
        self.headers = headers
        self.key = key
    }

    /// The route alone, its query not read (for a limit the route sets, before the body).
    static func route(ofURI uri: String) -> String {
        route(ofPath: originForm(uri))
    }

    private static func route(ofPath path: Substring) -> String {
        decode(path.prefix { $0 != "?" }.drop { $0 == "/" })
    }

    /// `http://host:port/path?query` (RFC 9112 §3.2.2's absolute form, which a server must
    /// accept; proxies and some clients send it) as `/path?query`: its scheme and host were
    /// taken for the route, answered 404.
    private static func originForm(_ uri: String) -> Substring {
        for scheme in ["http://", "https://"] where uri.utf8.count >= scheme.utf8.count && uri.prefix(scheme.count).lowercased() == scheme {
            let authorityAndPath = uri.dropFirst(scheme.count)
            return authorityAndPath.firstIndex { $0 == "/" || $0 == "?" }.map { authorityAndPath[$0...] } ?? "/"
        }
        return uri[...]
    }

    /// `+` is a space in a query (HTML forms, curl --data-urlencode); `%XX` as usual.
    private static func decode(_ text: Substring) -> String {
        percentDecode(text.replacingOccurrences(of: "+", with: " ")[...])
    }

    private static func percentDecode(_ text: Substring) -> String {
        text.removingPercentEncoding ?? String(text)
    }
}
