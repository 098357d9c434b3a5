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
        let (path, query) = uri.firstIndex(of: "?").map { (uri[..<$0], uri[uri.index(after: $0)...]) } ?? (uri[...], "")
        route = Self.decode(path.drop { $0 == "/" })
        var headers = Headers()
        var key: String?
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            if name == Self.keyParameter { key = value } else { headers.append(name, value) }
        }
        self.headers = headers
        self.key = key
    }

    /// `+` is a space in a query (HTML forms, curl --data-urlencode); `%XX` as usual.
    private static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}
