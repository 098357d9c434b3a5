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
        let query = headers.map { "\(escape($0.name))=\(escape($0.value))" }.joined(separator: "&")
        return "/" + escape(route) + (query.isEmpty ? "" : "?" + query)
    }
}
