import ConduitClient
import ConduitTesting
import Foundation
import Testing

/// Runs every ```` ```sh example ```` block of docs/ipc.md, in order, with the real `curl`
/// against a real host, so the documented commands keep working.
@Suite("docs/ipc.md curl examples", .serialized, .timeLimit(.minutes(1)))
struct CurlExampleTests {
    static let docs = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/ipc.md")

    /// The command lines of each example block (comments dropped, continuations kept).
    static func examples() throws -> [String] {
        let text = try String(contentsOf: docs, encoding: .utf8)
        var blocks: [String] = []
        var current: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "```sh example" {
                current = []
            } else if line == "```", let block = current {
                blocks.append(block.joined(separator: "\n"))
                current = nil
            } else if current != nil, !line.hasPrefix("#") {
                current?.append(String(line))
            }
        }
        return blocks
    }

    @Test func everyControlRouteExampleRunsAndAnswers() async throws {
        let examples = try Self.examples()
        let routes = ["status", "stop", "start", "getSharedKey", "setSharedKey", "diagnostics", "reload"]
        for route in routes {
            #expect(examples.contains { $0.contains("/internal.conduit.\(route)") }, "docs/ipc.md has a curl example for \(route)")
        }
        try await TestHost.run(catalog: .ipcTests) { host in
            var outputs: [String] = []
            for example in examples {
                let (status, output) = try await run(example, environment: ["IPC": "\(host.ipcPort)", "KEY": host.sharedKey])
                #expect(status == 0, "\(example) exited \(status): \(output)")
                outputs.append(output)
            }
            let answers = zip(examples, outputs)
            func output(for route: String) -> String { answers.first { $0.0.contains("/\(route)") }?.1 ?? "" }
            #expect(output(for: "internal.conduit.status").contains(#""isActive":true"#))
            #expect(output(for: "internal.conduit.stop").contains(#""isActive":false,"port":null"#))
            #expect(output(for: "internal.conduit.start").contains(#""isActive":true"#))
            #expect(output(for: "internal.conduit.setSharedKey").contains(#""sharedKey":"a-new-key-of-16b""#))
            #expect(output(for: "internal.conduit.diagnostics").hasPrefix(#"{"data":{"#))
            #expect(output(for: "internal.conduit.reload") == #"{"data":{"reloaded":true,"settingsNotApplied":[]}}"#)
            #expect(output(for: "echo?token=1") == "hello")
            #expect(host.sharedKey == "a-new-key-of-16b")
        }
    }

    private func run(_ script: String, environment: [String: String]) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        // The script talks to the host in this process: wait off the cooperative pool.
        let output = await offThePool { [process] in
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: output, as: UTF8.self)
        }
        return (process.terminationStatus, output)
    }
}
