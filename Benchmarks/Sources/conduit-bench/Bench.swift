import ArgumentParser
import Foundation

/// The load tool: `echo` (the default, so `conduit-bench --proto …` runs it) drives echo
/// round trips; `udp` measures datagrams pushed by the host's UDP handler.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conduit-bench", subcommands: [Echo.self, UDPBench.self], defaultSubcommand: Echo.self
    )
}

/// Where the server under test listens, and what to copy into the output.
struct Target: ParsableArguments {
    @Option var host = "127.0.0.1"
    @Option var port: Int
    @Option(help: "WebSocket path; {i} becomes the connection's index, e.g. /{i}/0?key=KEY for the host.")
    var path = "/"
    @Option(help: "The server's pid, for its CPU time per message and peak RSS.") var serverPid: Int32?
    @Option(help: "A label copied into the output.") var label = ""

    /// `path` for the connection numbered `index` (from 1).
    func path(for index: Int) -> String {
        path.replacingOccurrences(of: "{i}", with: "\(index)")
    }
}
