public import ConduitKit

/// The handler kinds the host can build, by the name a route entry's `handler` uses.
public struct HandlerCatalog: Sendable {
    private var kinds: [String: HandlerKind] = [:]

    public init(_ kinds: [HandlerKind] = []) {
        for kind in kinds { register(kind) }
    }

    public mutating func register(_ kind: HandlerKind) {
        precondition(kinds[kind.name] == nil, "handler kind '\(kind.name)' is registered twice")
        kinds[kind.name] = kind
    }

    public subscript(name: String) -> HandlerKind? { kinds[name] }

    public var names: [String] { kinds.keys.sorted() }

    /// `catalog` with `kinds` added: how an executable of one's own extends the built-in set.
    public static func + (catalog: HandlerCatalog, kinds: [HandlerKind]) -> HandlerCatalog {
        var joined = catalog
        for kind in kinds { joined.register(kind) }
        return joined
    }

    public static func + (catalog: HandlerCatalog, other: HandlerCatalog) -> HandlerCatalog {
        catalog + Array(other.kinds.values)
    }
}
