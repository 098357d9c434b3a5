import Yams

/// One line of the route table as written in YAML.
public struct RouteEntry: Sendable, Equatable {
    /// An exact route (`echo`) or a prefix pattern (`udp.*`).
    public let route: String
    /// The handler kind's registered name.
    public let handler: String
    /// The handler's options, still as YAML, decoded by the handler's own `Options` type.
    var options: Node { optionsTree.node }
    let optionsTree: YAMLTree
    /// Where the entry is, for error messages.
    let location: SourceLocation
    /// The files its options name, as they were when it was read.
    let files: NamedFiles

    init(route: String, handler: String, optionsTree: YAMLTree, location: SourceLocation) {
        self.route = route
        self.handler = handler
        self.optionsTree = optionsTree
        self.location = location
        files = NamedFiles(namedIn: optionsTree.node)
    }
}

/// A place in a configuration file.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    init(file: String, mark: Mark?) {
        self.file = file
        self.line = mark?.line ?? 1
        self.column = mark?.column ?? 1
    }

    init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// Where the byte at `offset` of `bytes` is: lines and columns from 1, columns in bytes.
    init(file: String, byteOffset offset: Int, in bytes: some Sequence<UInt8>) {
        var (line, lineStart) = (1, 0)
        for (index, byte) in bytes.prefix(offset).enumerated() where byte == UInt8(ascii: "\n") { (line, lineStart) = (line + 1, index + 1) }
        self.init(file: file, line: line, column: offset - lineStart + 1)
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// A parsed YAML tree. Yams' `Node` is a value type that is not marked `Sendable`; the host
/// never mutates one after parsing, so sharing it across threads is safe.
struct YAMLTree: @unchecked Sendable, Equatable {
    let node: Node
}
