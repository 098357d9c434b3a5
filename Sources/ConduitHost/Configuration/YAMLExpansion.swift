// libyaml's event parser, as Yams embeds it: Yams composes a document with every alias expanded
// and offers no event-level view to look at it first.
import CYaml

/// How many nodes a YAML text makes once its aliases are expanded, checked on libyaml's events
/// before Yams composes it. Nested aliases ("billion laughs") make a few lines expand to
/// billions of nodes: Yams hashed an alias used as a mapping key whole (checking for duplicate
/// keys) and every walk of the options after it (the files they name, their decoding) visited
/// each expanded node, so `conduit check`, a start or a reload hung on such a file.
enum YAMLExpansion {
    /// Far above any configuration a person writes (the default one has about 150 nodes).
    static let maxNodes = 100_000

    struct TooLarge: Error {
        /// 1-based, where the node that crossed the limit ends.
        let line: Int
        let column: Int
        /// The file has aliases: they made it that large, most likely.
        let expandsAliases: Bool

        var message: String {
            expandsAliases
                ? "the file expands to more than \(YAMLExpansion.maxNodes) YAML nodes once its aliases are expanded (aliases of aliases?)"
                : "the file has more than \(YAMLExpansion.maxNodes) YAML nodes (a route takes 4 to 10): split the table, or leave out what the defaults say"
        }
    }

    /// Throws when `yaml` expands to more than `limit` nodes. A text libyaml can't parse passes:
    /// Yams' composer reports its error, with its own words.
    static func check(_ yaml: String, limit: Int = maxNodes) throws(TooLarge) {
        var utf8 = Array(yaml.utf8)
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return }
        defer { yaml_parser_delete(&parser) }
        try utf8.withUnsafeMutableBufferPointer { (bytes) throws(TooLarge) in
            yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
            var counter = Counter(limit: limit)
            var event = yaml_event_t()
            while yaml_parser_parse(&parser, &event) == 1 {
                defer { yaml_event_delete(&event) }
                guard event.type != YAML_STREAM_END_EVENT else { return }
                guard counter.count(event) else {
                    throw TooLarge(line: Int(event.end_mark.line) + 1, column: Int(event.end_mark.column) + 1, expandsAliases: counter.sawAlias)
                }
            }
        }
    }

    /// Expanded sizes: of each anchored node once complete, of each collection still open.
    private struct Counter {
        let limit: Int
        private var anchored: [String: Int] = [:]
        /// The open collections, outermost first: their anchor and the nodes counted so far.
        private var open: [(anchor: String?, nodes: Int)] = []
        private var total = 0
        private(set) var sawAlias = false

        init(limit: Int) { self.limit = limit }

        /// Counts the nodes `event` adds; false once past the limit (sizes never pass it, so
        /// the sums can't overflow).
        mutating func count(_ event: yaml_event_t) -> Bool {
            switch event.type {
            case YAML_SCALAR_EVENT:
                return add(1, anchor: Self.name(event.data.scalar.anchor))
            case YAML_ALIAS_EVENT:
                sawAlias = true
                // An alias of an anchor not seen is Yams' error to report.
                return add(Self.name(event.data.alias.anchor).flatMap { anchored[$0] } ?? 1, anchor: nil)
            case YAML_SEQUENCE_START_EVENT:
                open.append((Self.name(event.data.sequence_start.anchor), 1))
            case YAML_MAPPING_START_EVENT:
                open.append((Self.name(event.data.mapping_start.anchor), 1))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let closed = open.popLast() else { return true }
                return add(closed.nodes, anchor: closed.anchor)
            default:
                break
            }
            return true
        }

        private mutating func add(_ nodes: Int, anchor: String?) -> Bool {
            if let anchor { anchored[anchor] = nodes }
            if open.isEmpty {
                total += nodes
                return total <= limit
            }
            open[open.count - 1].nodes += nodes
            return open[open.count - 1].nodes <= limit
        }

        private static func name(_ anchor: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            anchor.map { String(cString: $0) }
        }
    }
}
