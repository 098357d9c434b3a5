import ArgumentParser

/// Measurements against a real host in this process (ConduitTesting's `TestHost`, with the
/// built-in handler kinds): each subcommand prints its figures and exits non-zero when data
/// was lost or corrupted on the way.
@main
struct Measure: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conduit-measure",
        abstract: "Measure the host, in process: the Swift client, a process handler, the TLS bridge, AI token streams.",
        subcommands: [ClientCommand.self, ProcessCommand.self, TLSCommand.self, AICommand.self]
    )
}

/// Data lost or corrupted, or a reply not the one expected: the command exits non-zero.
struct MeasurementFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}

/// Throws `failure` unless `condition` holds.
func require(_ condition: Bool, _ failure: @autoclosure () -> String) throws {
    if !condition { throw MeasurementFailure(failure()) }
}

extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A host's YAML: `limits` lines and one route per `(pattern, handler, options)`, the options
/// in YAML's flow style (`{key: value, …}`) or empty.
func hostYAML(limits: [String] = [], routes: [(String, handler: String, options: String)]) -> String {
    var lines = limits.isEmpty ? [] : ["limits:"] + limits.map { "  \($0)" }
    lines.append("routes:")
    for (pattern, handler, options) in routes {
        lines += ["  - route: \(pattern)", "    handler: \(handler)"] + (options.isEmpty ? [] : ["    options: \(options)"])
    }
    return lines.joined(separator: "\n") + "\n"
}
