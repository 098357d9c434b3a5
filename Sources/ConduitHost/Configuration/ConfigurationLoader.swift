import ConduitKit
import Foundation
import Yams

/// Reads a configuration file (SPEC §4): YAML via Yams, environment overrides on top, and
/// every error reported with file, line, column and a sentence.
public struct ConfigurationLoader: Sendable {
    /// The name used for the built-in default in messages.
    public static let embeddedName = "<embedded conduit.yaml>"

    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The file named by `path`, else `CONDUIT_CONFIG`, else the embedded default.
    /// `regularFileOnly`: a pipe or FIFO is refused rather than read (a reload's: reading one
    /// again can wait for ever, and every control call waits behind a reload).
    public func load(path: String?, regularFileOnly: Bool = false) throws(ConfigurationError) -> HostConfiguration {
        guard let path = path ?? environment["CONDUIT_CONFIG"] else {
            return try load(yaml: EmbeddedConfiguration.yaml, file: Self.embeddedName)
        }
        return try load(yaml: ConfigurationFile.text(at: path, regularFileOnly: regularFileOnly), file: path)
    }

    public func load(yaml: String, file: String) throws(ConfigurationError) -> HostConfiguration {
        let root = try compose(yaml, file: file)
        var configuration = HostConfiguration(source: file)
        // Where each setting was given (`limits.congestionLowWaterBytes`), for checks across two.
        var given: [String: SourceLocation] = [:]
        guard let root else { return try applyEnvironment(configuration, given: given) }
        let mapping = try expectMapping(root, file: file, what: "the top level")
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            switch key {
            case "server", "limits":
                try readSettings(section: key, value, file: file, into: &configuration.settings, given: &given)
            case "routes":
                configuration.routes = try readRoutes(value, file: file)
            default:
                throw ConfigurationError(SourceLocation(file: file, mark: keyNode.mark),
                    "unknown section '\(key)'; the sections are 'server', 'limits' and 'routes'")
            }
        }
        configuration.clusterLocation = given["server.cluster"]
        return try applyEnvironment(configuration, given: given)
    }

    private func compose(_ yaml: String, file: String) throws(ConfigurationError) -> Node? {
        do {
            try YAMLExpansion.check(yaml)
        } catch {
            throw ConfigurationError(SourceLocation(file: file, line: error.line, column: error.column), error.message)
        }
        do {
            return try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigurationError(file: file, yamlError: error)
        } catch {
            throw ConfigurationError(SourceLocation(file: file, mark: nil), "the file is not valid YAML: \(error)")
        }
    }

    private func readSettings(
        section: String, _ node: Node, file: String, into settings: inout HostSettings, given: inout [String: SourceLocation]
    ) throws(ConfigurationError) {
        let mapping = try expectMapping(node, file: file, what: "'\(section)'")
        let fields = SettingField.all.filter { $0.section == section }
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let location = SourceLocation(file: file, mark: value.mark ?? keyNode.mark)
            if section == "server", key == "cluster" {
                settings.cluster = try readCluster(value, file: file)
                given["server.cluster"] = location
                continue
            }
            guard let field = fields.first(where: { $0.key == key }) else {
                let known = (fields.map(\.key) + (section == "server" ? ["cluster"] : [])).map { "'\($0)'" }.joined(separator: ", ")
                throw ConfigurationError(SourceLocation(file: file, mark: keyNode.mark),
                    "unknown setting '\(key)' in '\(section)'; known settings: \(known)")
            }
            let text: String
            switch value {
            case .scalar where value.null != nil:
                // Read as text it was "null": `runtimeFile: null` wrote the key to ./null.
                throw ConfigurationError(location, "'\(section).\(key)' has no value (null); leave it out for the default")
            case .scalar(let scalar): text = scalar.string
            case .sequence(let items) where field.takesList && items.allSatisfy({ $0.scalar != nil }):
                text = items.compactMap(\.string).joined(separator: ",")
            default:
                throw ConfigurationError(location, "'\(section).\(key)' must be a single value")
            }
            do {
                try field.apply(&settings, text)
            } catch {
                throw ConfigurationError(location, "'\(section).\(key)': \(error.message)")
            }
            given["\(section).\(key)"] = location
        }
    }

    /// `cluster: {nats: <url>, name: <host name>}`: both required.
    private func readCluster(_ node: Node, file: String) throws(ConfigurationError) -> ClusterSettings {
        let mapping = try expectMapping(node, file: file, what: "'server.cluster'")
        var values: [String: String] = [:]
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            guard ["nats", "name"].contains(key) else {
                throw ConfigurationError(SourceLocation(file: file, mark: keyNode.mark),
                    "unknown setting '\(key)' in 'server.cluster'; known settings: 'nats', 'name'")
            }
            guard let text = value.string, !text.isEmpty else {
                throw ConfigurationError(SourceLocation(file: file, mark: value.mark), "'server.cluster.\(key)' must be a non-empty string")
            }
            values[key] = text
        }
        guard let nats = values["nats"], let name = values["name"] else {
            throw ConfigurationError(SourceLocation(file: file, mark: node.mark),
                "'server.cluster' needs 'nats' (the NATS URL the hosts share) and 'name' (this host's name)")
        }
        return ClusterSettings(nats: nats, name: name)
    }

    private func readRoutes(_ node: Node, file: String) throws(ConfigurationError) -> [RouteEntry] {
        guard case .sequence(let items) = node else {
            throw ConfigurationError(SourceLocation(file: file, mark: node.mark),
                "'routes' must be a list of entries, each with 'route' and 'handler'")
        }
        var entries: [RouteEntry] = []
        var seen: [String: SourceLocation] = [:]
        for item in items {
            let mapping = try expectMapping(item, file: file, what: "a route entry")
            let location = SourceLocation(file: file, mark: item.mark)
            var route: String?
            var handler: String?
            var options = Node.mapping(Node.Mapping([]))
            for (keyNode, value) in mapping {
                let here = SourceLocation(file: file, mark: value.mark)
                switch keyNode.string {
                case "route": route = try expectString(value, at: here, what: "'route'")
                case "handler": handler = try expectString(value, at: here, what: "'handler'")
                case "options":
                    guard value.mapping != nil || value.null != nil else {
                        throw ConfigurationError(here, "'options' must be a mapping of option names to values")
                    }
                    options = value.mapping != nil ? value : .mapping(Node.Mapping([]))
                default:
                    throw ConfigurationError(SourceLocation(file: file, mark: keyNode.mark),
                        "unknown key '\(keyNode.string ?? "")' in a route entry; an entry has 'route', 'handler' and 'options'")
                }
            }
            guard let route else { throw ConfigurationError(location, "this route entry has no 'route'") }
            guard let handler else { throw ConfigurationError(location, "the entry for '\(route)' has no 'handler'") }
            if let problem = RoutePattern.problem(with: route) {
                throw ConfigurationError(location, problem)
            }
            if let first = seen[route] {
                throw ConfigurationError(location, "the route '\(route)' is already defined at line \(first.line)")
            }
            seen[route] = location
            entries.append(RouteEntry(route: route, handler: handler, optionsTree: YAMLTree(node: options), location: location))
        }
        return entries
    }

    private func applyEnvironment(_ configuration: HostConfiguration, given: [String: SourceLocation]) throws(ConfigurationError) -> HostConfiguration {
        var configuration = configuration
        var given = given
        for field in SettingField.all {
            guard let value = environment[field.environmentName] else { continue }
            let location = SourceLocation(file: "$\(field.environmentName)", mark: nil)
            do {
                try field.apply(&configuration.settings, value)
            } catch {
                throw ConfigurationError(location, error.message)
            }
            given["\(field.section).\(field.key)"] = location
        }
        let settings = configuration.settings
        guard settings.congestionLowWaterBytes < settings.congestionHighWaterBytes else {
            // At the one given (the low mark first): the file's first line blamed a file that set neither.
            let location = given["limits.congestionLowWaterBytes"] ?? given["limits.congestionHighWaterBytes"]
            throw ConfigurationError(location ?? SourceLocation(file: configuration.source, mark: nil),
                "'limits.congestionLowWaterBytes' (\(settings.congestionLowWaterBytes)) must be below 'limits.congestionHighWaterBytes' (\(settings.congestionHighWaterBytes))")
        }
        return configuration
    }

    private func expectMapping(_ node: Node, file: String, what: String) throws(ConfigurationError) -> Node.Mapping {
        guard let mapping = node.mapping else {
            throw ConfigurationError(SourceLocation(file: file, mark: node.mark), "\(what) must be a mapping of keys to values")
        }
        return mapping
    }

    private func expectString(_ node: Node, at location: SourceLocation, what: String) throws(ConfigurationError) -> String {
        guard let string = node.scalar?.string, !string.isEmpty else {
            throw ConfigurationError(location, "\(what) must be a non-empty string")
        }
        return string
    }
}

extension ConfigurationError {
    init(file: String, yamlError: YamlError) {
        switch yamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            self.init(SourceLocation(file: file, mark: mark), "the file is not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            self.init(SourceLocation(file: file, mark: context.mark),
                      "the key '\(duplicates.joined(separator: "', '"))' appears twice in one mapping")
        case .reader(let problem, let offset?, _, let yaml):
            self.init(SourceLocation(file: file, byteOffset: offset, in: yaml.utf8), "the file is not valid YAML: \(problem)")
        default:
            self.init(SourceLocation(file: file, mark: nil), "the file is not valid YAML: \(yamlError)")
        }
    }
}
