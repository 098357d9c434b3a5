/// Where a handler is mounted: a route table pattern, exact (`echo`) or a prefix (`udp.*`).
public enum RouteMount {
    /// `route` relative to `pattern`, which matched it: what follows the prefix, or empty for an
    /// exact pattern.
    public static func operation(of route: String, under pattern: String) -> String {
        pattern.hasSuffix(".*") ? String(route.utf8.dropFirst(pattern.utf8.count - 1))! : ""
    }
}
