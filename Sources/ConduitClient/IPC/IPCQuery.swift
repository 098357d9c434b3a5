import ConduitWire
import Foundation

/// Builds IPC request targets, `/<route>?<headers>` (SPEC §6), with every part percent-encoded.
enum IPCQuery {
    /// Characters left as they are in a path segment or query component: RFC 3986 unreserved.
    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// `key` names the shared key in an IPC query, so it is never a header there.
    static let reservedKey = "key"

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    /// `/<route>?name=value&…` for `headers` in order.
    static func target(route: String, headers: Headers) -> String {
        let query = encode(headers.map { ($0.name, $0.value) })
        return "/" + escape(route) + (query.isEmpty ? "" : "?" + query)
    }

    /// `name=value&…`, every part escaped.
    static func encode(_ parameters: [(String, String)]) -> String {
        parameters.map { "\(escape($0))=\(escape($1))" }.joined(separator: "&")
    }
}
