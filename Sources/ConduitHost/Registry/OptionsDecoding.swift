import ConduitKit
import Foundation
import Yams

/// How a route entry's YAML options become a handler's `Options` (SPEC §4): for a
/// `HandlerOptions` type, unknown keys are refused, the YAML is laid over the type's own
/// defaults, and `validate` runs; any other `Decodable` is decoded as it is.
extension OptionsDecoder {
    init(entry: RouteEntry) {
        self.init { type in
            try Self.refuseOverflowingBaseSixty(in: entry.options, entry: entry)
            do {
                if let defaulted = type as? any HandlerOptions.Type {
                    return try Self.decodeOverDefaults(defaulted, entry: entry)
                }
                return try YAMLDecoder().decode(type, from: entry.options)
            } catch let error as DecodingError {
                throw ConfigurationError(entry: entry, decodingError: error)
            }
        }
    }

    private static func decodeOverDefaults<Options: HandlerOptions>(_ type: Options.Type, entry: RouteEntry) throws -> Options {
        let defaults = Options()
        try refuseUnknownKeys(in: entry.options, declaredBy: defaults, path: [], entry: entry)
        let defaultsNode = try Yams.compose(yaml: YAMLEncoder().encode(defaults)) ?? .mapping(Node.Mapping([]))
        let options = try YAMLDecoder().decode(Options.self, from: laid(entry.options, over: defaultsNode))
        try validate(options, path: [], entry: entry)
        return options
    }

    /// The property names of `options` as YAML keys (a property wrapper's `_name` as `name`).
    private static func declaredKeys(of options: any HandlerOptions) -> [(key: String, value: Any)] {
        Mirror(reflecting: options).children.compactMap { child in
            child.label.map { (key: $0.hasPrefix("_") ? String($0.dropFirst()) : $0, value: child.value) }
        }
    }

    private static func refuseUnknownKeys(in node: Node, declaredBy options: any HandlerOptions, path: [String], entry: RouteEntry) throws(ConfigurationError) {
        guard let mapping = node.mapping else { return }
        let declared = declaredKeys(of: options)
        for (keyNode, value) in mapping {
            // A key that is not a plain word (`{}` in `options: {{}}`) is named as written.
            let key = keyNode.scalar?.string ?? (try? Yams.serialize(node: keyNode).trimmingCharacters(in: .whitespacesAndNewlines)) ?? "?"
            guard let property = declared.first(where: { $0.key == key }) else {
                let known = declared.isEmpty ? "this handler takes no options" : "known options: " + declared.map { "'\($0.key)'" }.joined(separator: ", ")
                throw ConfigurationError(
                    SourceLocation(file: entry.location.file, mark: value.mark ?? keyNode.mark),
                    "unknown option '\((path + [key]).joined(separator: "."))' of route '\(entry.route)'; \(known)")
            }
            if let section = property.value as? any HandlerOptions {
                try refuseUnknownKeys(in: value, declaredBy: section, path: path + [key], entry: entry)
            }
        }
    }

    /// `node`'s keys laid over `defaults`, section by section; the nodes kept are the entry's
    /// own, so an error still points at the line the user wrote.
    private static func laid(_ node: Node, over defaults: Node) -> Node {
        guard let given = node.mapping, let base = defaults.mapping else { return node }
        var pairs = base.map { (key: $0.key, value: $0.value) }
        for (key, value) in given {
            if let index = pairs.firstIndex(where: { $0.key == key }) {
                pairs[index].value = laid(value, over: pairs[index].value)
            } else {
                pairs.append((key, value))
            }
        }
        return .mapping(Node.Mapping(pairs.map { ($0.key, $0.value) }, given.tag, given.style, given.mark))
    }

    private static func validate(_ options: any HandlerOptions, path: [String], entry: RouteEntry) throws(ConfigurationError) {
        do {
            try options.validate()
        } catch {
            let keys = path + [error.option]
            let node = keys.reduce(entry.options as Node?) { $0?.mapping?[$1] }
            let location = (node?.mark).map { SourceLocation(file: entry.location.file, mark: $0) } ?? entry.optionsLocation
            throw ConfigurationError(location, "option '\(keys.joined(separator: "."))' \(error.reason) (route '\(entry.route)')")
        }
        for (key, value) in declaredKeys(of: options) {
            if let section = value as? any HandlerOptions { try validate(section, path: path + [key], entry: entry) }
        }
    }
}
