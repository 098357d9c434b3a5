import Foundation

/// Plans every file the new module adds or changes, checking each first; `apply` writes them.
struct Scaffold {
    let module: HandlerModule
    let package: URL
    /// Whether the route goes into the embedded default config too.
    let addRoute: Bool

    static let modulesMarker = "// new-handler: handler modules above this line"
    static let targetsMarker = "// new-handler: targets above this line"
    static let catalogFile = "Sources/ConduitCLI/HandlerCatalog+BuiltIn.swift"
    static let configFile = "config/conduit.yaml"

    func plan() throws -> Edits {
        try refuseATakenTypeName()
        var edits = Edits(package: package)
        try edits.create("\(module.sourceDirectory)/\(module.handlerType).swift", Templates.handler(module))
        try edits.create("\(module.testDirectory)/\(module.handlerType)Tests.swift", Templates.test(module))
        try edits.change("Package.swift") { try addTargets(to: $0) }
        try edits.change(Self.catalogFile) { try register(in: $0) }
        if addRoute { try edits.change(Self.configFile) { try appendRoute(to: $0) } }
        return edits
    }

    /// The generated handler's type must not be declared already in the package's sources:
    /// `Conduit` made `ConduitHandler` (ConduitKit's protocol), `Silent` ConduitTesting's
    /// `SilentHandler`, and the package stopped building. Nor its module's name: the test
    /// names the handler `ConduitX.XHandler`, and `Error` made `ConduitError`, a type
    /// ConduitKit declares, which that name found instead of the module.
    private func refuseATakenTypeName() throws {
        let sources = package.appending(path: "Sources")
        guard let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil) else { return }
        let kinds = ["struct", "class", "enum", "protocol", "actor", "typealias"]
        for case let file as URL in files where file.pathExtension == "swift" {
            guard let text = try? String(contentsOf: file, encoding: .utf8) else { continue }
            for name in [module.handlerType, module.target] where kinds.contains(where: { Self.declares(text, "\($0) \(name)") }) {
                let path = file.path.replacingOccurrences(of: package.path + "/", with: "")
                throw ScaffoldError("a type named '\(name)' exists already (\(path)); nothing was changed (pick another name)")
            }
        }
    }

    /// Whether `text` has `declaration` followed by something that can't go on a name.
    private static func declares(_ text: String, _ declaration: String) -> Bool {
        var rest = text[...]
        while let found = rest.range(of: declaration) {
            if rest[found.upperBound...].first.map({ !($0.isLetter || $0.isNumber || $0 == "_") }) ?? true { return true }
            rest = rest[found.upperBound...]
        }
        return false
    }

    private func addTargets(to manifest: String) throws -> String {
        // Any quoted mention: the handler modules are declared as `handlerModule("ConduitX", …)`.
        for target in [module.target, module.testTarget] where manifest.contains("\"\(target)\"") {
            throw ScaffoldError("Package.swift already has a target named '\(target)'")
        }
        var lines = manifest.components(separatedBy: "\n")
        try insert(["\"\(module.target)\","], before: Self.modulesMarker, in: &lines, file: "Package.swift")
        try insert(Templates.targets(module), before: Self.targetsMarker, in: &lines, file: "Package.swift")
        return lines.joined(separator: "\n")
    }

    private func register(in catalog: String) throws -> String {
        // However it is spaced (`name:"x"` registered "x" a second time, and the catalog's
        // registration trapped at every start).
        let registered = try NSRegularExpression(pattern: #"name:\s*"\#(NSRegularExpression.escapedPattern(for: module.kind))""#)
        guard registered.firstMatch(in: catalog, range: NSRange(catalog.startIndex..., in: catalog)) == nil else {
            throw ScaffoldError("\(Self.catalogFile) already registers a handler kind '\(module.kind)'")
        }
        var lines = catalog.components(separatedBy: "\n")
        guard let lastKind = lines.lastIndex(where: { $0.contains("HandlerKind(") }),
              let lastImport = lines.lastIndex(where: { $0.hasPrefix("import ") }) else {
            throw ScaffoldError("\(Self.catalogFile) has no import and HandlerKind lines to add to")
        }
        // The list's last element may go without its comma.
        if !lines[lastKind].trimmingCharacters(in: .whitespaces).hasSuffix(",") { lines[lastKind] += "," }
        let indent = lines[lastKind].prefix { $0 == " " }
        lines.insert("\(indent)HandlerKind(\(module.handlerType).self, name: \"\(module.kind)\"),", at: lastKind + 1)
        let position = lines[...lastImport].firstIndex { $0.hasPrefix("import ") && $0 > "import \(module.target)" } ?? lastImport + 1
        lines.insert("import \(module.target)", at: position)
        return lines.joined(separator: "\n")
    }

    /// Appends the entry at the end of the `routes:` block (the block may be anywhere in the
    /// file), indented as its entries are (two spaces, none or four: always two made the file
    /// invalid YAML); the route quoted (`-` alone is YAML's own).
    private func appendRoute(to yaml: String) throws -> String {
        var lines = yaml.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasPrefix("routes:") }) else {
            throw ScaffoldError("\(Self.configFile) has no 'routes:' section")
        }
        let rest = lines[start].dropFirst("routes:".count).trimmingCharacters(in: .whitespaces)
        guard rest.isEmpty || rest.hasPrefix("#") else {
            throw ScaffoldError("\(Self.configFile):\(start + 1): 'routes:' is written inline; write its entries as a block ('- route: …') and run this again")
        }
        var end = start
        var entryIndent: Substring?
        for index in lines.indices.dropFirst(start + 1) {
            let line = lines[index]
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") { continue }
            // A document's end (`---`, `...`) or the next key at the top ends the block.
            guard line.hasPrefix(" ") || (line.hasPrefix("-") && !line.hasPrefix("---")) else { break }
            if Self.route(in: line) == module.route {
                throw ScaffoldError("\(Self.configFile):\(index + 1): the route '\(module.route)' is already in the table")
            }
            let indent = line.prefix { $0 == " " }
            if entryIndent == nil, line.dropFirst(indent.count).hasPrefix("-") { entryIndent = indent }
            end = index
        }
        let indent = entryIndent ?? "  "
        lines.insert(contentsOf: ["\(indent)- route: \"\(module.route)\"", "\(indent)  handler: \(module.kind)"], at: end + 1)
        return lines.joined(separator: "\n")
    }

    /// The route a line of the table names (`- route: X`, `route: X` under an entry, or
    /// `- {route: X, …}`; quoted or not, a comment after it allowed), or nil.
    private static func route(in line: String) -> String? {
        guard let key = line.range(of: #"(^|[\s{,-])route:"#, options: .regularExpression) else { return nil }
        var value = line[key.upperBound...]
        if let comment = value.range(of: " #") { value = value[..<comment.lowerBound] }
        if let next = value.firstIndex(where: { $0 == "," || $0 == "}" }) { value = value[..<next] }
        return value.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
    }

    private func insert(_ new: [String], before marker: String, in lines: inout [String], file: String) throws {
        guard let index = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == marker }) else {
            throw ScaffoldError("\(file) has lost its marker comment '\(marker)'; put it back where new entries go")
        }
        let indent = lines[index].prefix { $0 == " " }
        lines.insert(contentsOf: new.map { $0.isEmpty ? $0 : indent + $0 }, at: index)
    }
}

/// The files to create and change, all computed before any is written.
struct Edits {
    let package: URL
    private var writes: [(path: String, contents: String)] = []

    init(package: URL) { self.package = package }

    var paths: [String] { writes.map(\.path) }

    mutating func create(_ path: String, _ contents: String) throws {
        let url = package.appending(path: path)
        guard !FileManager.default.fileExists(atPath: url.path) else {
            throw ScaffoldError("\(path) exists already; nothing was changed (remove it or pick another name)")
        }
        writes.append((path, contents))
    }

    mutating func change(_ path: String, _ edit: (String) throws -> String) throws {
        let url = package.appending(path: path)
        guard let contents = try? String(contentsOf: url, encoding: .utf8) else {
            throw ScaffoldError("\(path) can't be read; nothing was changed")
        }
        writes.append((path, try edit(contents)))
    }

    func apply() throws {
        for (path, contents) in writes {
            let url = package.appending(path: path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try contents.write(to: url, atomically: true, encoding: .utf8)
        }
    }
}
