import Atomics
public import ConduitKit

/// An immutable route table: exact routes first, then the longest `prefix.*` pattern (SPEC §3).
/// The registry swaps whole tables atomically, so a lookup never sees half a reload.
public final class RouteTable: Sendable, AtomicReference {
    /// A class, so a lookup on the hot path hands out one reference, not a copy of the entry.
    public final class Route: Sendable {
        public let entry: RouteEntry
        public let handler: any ConduitHandler
        public let stats: RouteStats
        /// The handler's running request tasks, cancelled when it stops.
        public let tasks: RequestTasks
        /// The pattern's length in bytes, kept: counted for every lookup, it cost 10 instructions.
        let patternBytes: Int
        /// A `prefix.*` pattern, whose requests have an operation (the rest of their route).
        let isPrefixPattern: Bool

        init(entry: RouteEntry, handler: any ConduitHandler, stats: RouteStats, tasks: RequestTasks) {
            self.entry = entry
            patternBytes = entry.route.utf8.count
            isPrefixPattern = entry.route.hasSuffix(".*")
            self.handler = handler
            self.stats = stats
            self.tasks = tasks
        }

        /// Cancels what the handler's requests still run, then stops the handler.
        func stop() async {
            tasks.cancelAll()
            await handler.stop()
        }
    }

    /// In file order.
    public let routes: [Route]
    private let exact: [String: Route]
    /// `(prefix including the dot, route)`, longest prefix first.
    private let prefixes: [(String, Route)]

    init(routes: [Route]) {
        self.routes = routes
        var exact: [String: Route] = [:]
        var prefixes: [(String, Route)] = []
        for route in routes {
            if route.entry.route.hasSuffix(".*") {
                prefixes.append((String(route.entry.route.dropLast()), route))
            } else {
                exact[route.entry.route] = route
            }
        }
        self.exact = exact
        self.prefixes = prefixes.sorted { $0.0.utf8.count > $1.0.utf8.count }
    }

    /// The route `route` names, byte for byte: Swift compares strings by canonical equivalence,
    /// so `TAS\u{212A}.run` (a KELVIN SIGN) equalled `TASK.run` and had the prefix `TASK.`,
    /// and cutting its operation off at the prefix's length trapped inside that sign.
    public func lookup(_ route: String) -> Route? {
        // The table's names are ASCII (`RoutePattern`), so a name equivalent to one but not the
        // same bytes has a non-ASCII character in place of an ASCII one: it is longer.
        if let match = exact[route], match.patternBytes == route.utf8.count { return match }
        return prefixes.first { route.utf8.starts(with: $0.0.utf8) }?.1
    }
}
