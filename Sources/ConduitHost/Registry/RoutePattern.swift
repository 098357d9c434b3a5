import ConduitKit

/// The route table's patterns: exact routes, or `prefix.*` matching every route under `prefix.`.
enum RoutePattern {
    /// Host-only routes, reachable over IPC and never over the WebSocket (SPEC §3).
    static let internalPrefix = "internal."

    /// Why `pattern` can't be a route table entry, or nil when it can.
    static func problem(with pattern: String) -> String? {
        let name = pattern.hasSuffix(".*") ? String(pattern.dropLast(2)) : pattern
        guard !name.isEmpty, name.utf8.allSatisfy(NameAlphabet.contains) else {
            return "'\(pattern)' is not a route: use letters, digits, '.', '_' and '-', optionally ending in '.*'"
        }
        guard !pattern.hasPrefix(internalPrefix) else {
            return "'\(pattern)' starts with 'internal.', which is reserved for the host's control routes"
        }
        return nil
    }
}
