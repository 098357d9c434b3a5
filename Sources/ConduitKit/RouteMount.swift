/// Where a handler is mounted: a route table pattern, exact (`echo`) or a prefix (`udp.*`).
public enum RouteMount {
    /// `route` relative to `pattern`, which matched it: what follows the prefix, or empty for an
    /// exact pattern.
    /// A route that does not start with the prefix's bytes (equal as Swift compares strings)
    /// gives what follows as many bytes, with a character cut in two replaced, never a trap.
    public static func operation(of route: String, under pattern: String) -> String {
        pattern.hasSuffix(".*") ? String(decoding: route.utf8.dropFirst(pattern.utf8.count - 1), as: UTF8.self) : ""
    }

    /// The full route of `operation` under `pattern`, the inverse of `operation(of:under:)`:
    /// `dgram.data` for `data` under `dgram.*`; under an exact pattern, the pattern itself for
    /// an empty operation and `pattern.operation` for another (a handler's push routes).
    public static func route(of operation: String, under pattern: String) -> String {
        if pattern.hasSuffix(".*") { return String(pattern.dropLast()) + operation }
        return operation.isEmpty ? pattern : "\(pattern).\(operation)"
    }
}
