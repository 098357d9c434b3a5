import Atomics
import CoreMetrics
public import ConduitKit
public import Logging
public import NIOCore
import Yams

/// Builds route tables from configurations and holds the current one. A reload builds the
/// new table completely (a bad file changes nothing), starts new handlers, swaps the table in
/// one atomic store, then stops the handlers it no longer uses.
public final class RouteRegistry: Sendable {
    private let catalog: HandlerCatalog
    private let current: ManagedAtomic<RouteTable>
    private let makeContext: @Sendable (RouteEntry) -> HandlerContext
    let metrics: HostMetrics
    /// `limits.handlerStartStopSeconds`: how long a handler's `start()` or `stop()` is waited for.
    private let stepLimit: Duration
    /// The handlers of the table in force were started: a reload before (a SIGHUP during the
    /// start-up) only swaps the table, which the start-up then starts.
    private let started = ManagedAtomic(false)

    /// Builds (but does not start) the handlers of `configuration`.
    public init(
        configuration: HostConfiguration, catalog: HandlerCatalog, metrics: HostMetrics = HostMetrics(),
        makeContext: @escaping @Sendable (RouteEntry) -> HandlerContext
    ) throws(ConfigurationError) {
        self.catalog = catalog
        self.makeContext = makeContext
        self.metrics = metrics
        self.stepLimit = .seconds(configuration.settings.handlerStartStopSeconds)
        let table = try Self.build(configuration.routes, catalog: catalog, reusing: nil, metrics: metrics, makeContext: makeContext)
        self.current = ManagedAtomic(table)
    }

    /// The table in force; one atomic load.
    public var table: RouteTable { current.load(ordering: .acquiring) }

    public func lookup(_ route: String) -> RouteTable.Route? { table.lookup(route) }

    /// Starts the table's handlers, in file order; called once, by the start-up, in turn with
    /// reloads (the control plane's queue).
    public func startHandlers() async throws {
        for route in table.routes { try await start(route) }
        started.store(true, ordering: .releasing)
    }

    public func stopHandlers(logger: Logger) async {
        for route in table.routes.reversed() { await stop(route, logger: logger) }
    }

    /// Starts `route`'s handler within the limit; one that starts later is stopped again then.
    private func start(_ route: RouteTable.Route) async throws {
        let outcome = await TimeLimitedStep.run(stepLimit, route.handler.start) { late in
            if case .success = late { Task { await route.stop() } }
        }
        guard let outcome else {
            throw ConduitError.unavailable("the handler of route '\(route.entry.route)' did not start within \(stepLimit) (limits.handlerStartStopSeconds)")
        }
        try outcome.get()
    }

    private func stop(_ route: RouteTable.Route, logger: Logger) async {
        guard await TimeLimitedStep.run(stepLimit, route.stop) == nil else { return }
        logger.warning("a handler did not stop in time; it is left to finish", metadata: [
            "route": "\(route.entry.route)", "limit": "\(stepLimit)",
        ])
    }

    /// Replaces the table with one built from `configuration`. Throws, keeping the old table,
    /// when the configuration is invalid or a new handler fails to start.
    public func reload(_ configuration: HostConfiguration, logger: Logger) async throws {
        // A file emptied by mistake (or half written) would silently take every route away.
        guard !configuration.routes.isEmpty else {
            throw ConfigurationError(SourceLocation(file: configuration.source, mark: nil),
                "the file names no routes; a reload must keep at least one (stop the host to serve none)")
        }
        let old = table
        let new = try Self.build(configuration.routes, catalog: catalog, reusing: old, metrics: metrics, makeContext: makeContext)
        // A route's instance is its handler's, which `tasks` goes with (its stats go with its name).
        // Sets, not scans of the other table per route: 15,000 routes took seconds to reload.
        let kept = Set(new.routes.map { ObjectIdentifier($0.tasks) })
        let running = Set(old.routes.map { ObjectIdentifier($0.tasks) })
        let added = new.routes.filter { !running.contains(ObjectIdentifier($0.tasks)) }
        // All or nothing: a handler that fails to start stops the ones this reload started.
        guard started.load(ordering: .acquiring) else {
            // Before the start-up started anything: it starts this table.
            current.store(new, ordering: .releasing)
            return
        }
        var startedNow: [RouteTable.Route] = []
        do {
            for route in added {
                try await start(route)
                startedNow.append(route)
            }
        } catch {
            for route in startedNow { await stop(route, logger: logger) }
            throw error
        }
        current.store(new, ordering: .releasing)
        let names = Set(new.routes.map(\.entry.route))
        for route in old.routes where !kept.contains(ObjectIdentifier(route.tasks)) {
            await stop(route, logger: logger)
            // A route gone from the table: its series leave /metrics (a new instance keeps them).
            if !names.contains(route.entry.route) { route.stats.destroy() }
        }
        logger.info("route table reloaded", metadata: [
            "routes.count": "\(new.routes.count)", "routes.added": "\(added.count)",
            "config.file": "\(configuration.source)",
        ])
    }

    /// Checks a configuration against the catalog without keeping any handler it builds.
    public static func validate(_ configuration: HostConfiguration, catalog: HandlerCatalog, group: any EventLoopGroup) throws(ConfigurationError) {
        _ = try build(configuration.routes, catalog: catalog, reusing: nil, metrics: HostMetrics(factory: NOOPMetricsHandler.instance)) { entry in
            HandlerContext(route: entry.route, logger: Logger(label: "conduit.check"), pushes: DiscardingPushSink(), eventLoopGroup: group)
        }
    }

    private static func build(
        _ entries: [RouteEntry], catalog: HandlerCatalog, reusing old: RouteTable?, metrics: HostMetrics,
        makeContext: (RouteEntry) -> HandlerContext
    ) throws(ConfigurationError) -> RouteTable {
        var routes: [RouteTable.Route] = []
        let running = Dictionary(grouping: old?.routes ?? [], by: \.entry.route)
        for entry in entries {
            if let same = running[entry.route]?.first(where: { $0.entry.isSameDefinition(as: entry) }) {
                routes.append(RouteTable.Route(entry: entry, handler: same.handler, stats: same.stats, tasks: same.tasks))
                continue
            }
            guard let kind = catalog[entry.handler] else {
                let known = catalog.names.map { "'\($0)'" }.joined(separator: ", ")
                throw ConfigurationError(entry.location, "unknown handler kind '\(entry.handler)' for route '\(entry.route)'; known kinds: \(known)")
            }
            let earlier = running[entry.route]?.first?.stats
            // The handler's series are the route's, and leave /metrics with it.
            let handlerMetrics = earlier?.handlerMetrics ?? RouteMetricsFactory(base: metrics.factory)
            let handler: any ConduitHandler
            do {
                let context = makeContext(entry)
                let routeContext = HandlerContext(
                    route: context.route, logger: context.logger, pushes: context.pushes, eventLoopGroup: context.eventLoopGroup,
                    metrics: handlerMetrics)
                handler = try kind.make(OptionsDecoder(entry: entry), routeContext)
            } catch let error as ConfigurationError {
                throw error
            } catch {
                throw ConfigurationError(entry.optionsLocation, "the options of route '\(entry.route)' are not usable: \(error)")
            }
            // A route whose options changed keeps counting where it was, in diagnostics as in
            // /metrics (whose series its name picks): new counters started again at 0 there.
            let stats = earlier ?? RouteStats(route: entry.route, metrics: metrics, handlerMetrics: handlerMetrics)
            routes.append(RouteTable.Route(entry: entry, handler: handler, stats: stats, tasks: RequestTasks()))
        }
        return RouteTable(routes: routes)
    }
}

extension RouteEntry {
    func isSameDefinition(as other: RouteEntry) -> Bool {
        route == other.route && handler == other.handler && options == other.options && files == other.files
    }

    var optionsLocation: SourceLocation {
        options.mark.map { SourceLocation(file: location.file, mark: $0) } ?? location
    }
}

extension ConfigurationError {
    init(entry: RouteEntry, decodingError: DecodingError) {
        let (path, sentence): ([any CodingKey], String) = switch decodingError {
        case .typeMismatch(let type, let context): (context.codingPath, "expected \(Self.describe(type)), found \(Self.describe(Self.node(at: context.codingPath, in: entry.options)))")
        case .valueNotFound(let type, let context): (context.codingPath, "expected \(Self.describe(type)), found nothing")
        case .keyNotFound(let key, let context): (context.codingPath, "the option '\(key.stringValue)' is required")
        case .dataCorrupted(let context): (context.codingPath, context.debugDescription)
        @unknown default: ([], "\(decodingError)")
        }
        let node = Self.node(at: path, in: entry.options)
        let name = path.map(\.stringValue).joined(separator: ".")
        let prefix = name.isEmpty ? "options of route '\(entry.route)'" : "option '\(name)' of route '\(entry.route)'"
        let location = (node?.mark).map { SourceLocation(file: entry.location.file, mark: $0) } ?? entry.optionsLocation
        self.init(location, "\(prefix): \(sentence)")
    }

    /// The node a decoding path leads to (the nearest one that exists).
    private static func node(at path: [any CodingKey], in options: Node) -> Node? {
        path.reduce(options as Node?) { node, key in
            guard let node else { return nil }
            if let index = key.intValue, let items = node.sequence, items.indices.contains(index) { return items[index] }
            return node.mapping?[key.stringValue] ?? node
        }
    }

    /// What the user wrote, in a few words: `'abc'`, a list, a mapping.
    private static func describe(_ node: Node?) -> String {
        switch node {
        case .scalar(let scalar)?: "'\(scalar.string)'"
        case .sequence?: "a list"
        case .mapping?: "a mapping"
        default: "nothing"
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is UInt16.Type, is UInt32.Type, is UInt64.Type: "a whole number"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        // Yams' node kinds, which an option read as a list or a mapping expects.
        case is Node.Sequence.Type: "a list, e.g. [a, b]"
        case is Node.Mapping.Type: "a mapping, e.g. {a: 1}"
        case is Node.Scalar.Type: "a single value"
        default: "\(type)"
        }
    }
}

/// The push sink of handlers built only to validate a configuration.
struct DiscardingPushSink: PushSink {
    func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome { .buffered }
    func isConnected(_ client: ClientID) -> Bool { false }
    func isCongested(_ client: ClientID) -> Bool { false }
    func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) { body() }
}

import ConduitWire
