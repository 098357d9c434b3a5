import ArgumentParser
import ConduitCLI
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore

/// What the child process costs next to in-process echo: the same requests to `echo` and to
/// `example.echo` (handlers/example.py, run by python3), one host, one WebSocket client.
struct ProcessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process", abstract: "In-process echo against a Python child's (example.echo): round trips and messages per second."
    )

    @Option(help: "The repository root, where handlers/example.py is.")
    var root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .path

    static let roundTrips = 2_000
    static let pipelined = 20_000
    static let window = 64
    static let payload = [UInt8](repeating: 0x61, count: 64)

    func validate() throws {
        guard FileManager.default.fileExists(atPath: "\(root)/handlers/example.py") else {
            throw ValidationError("no handlers/example.py under \(root); pass the repository root with --root")
        }
    }

    func run() async throws {
        let directory = root.replacingOccurrences(of: "'", with: "''") // in single quotes below
        let yaml = hostYAML(routes: [
            ("echo", handler: "echo", options: ""),
            ("example.*", handler: "process", options: "{command: [python3, handlers/example.py], workingDirectory: '\(directory)'}"),
        ])
        try await TestHost.run(yaml: yaml, catalog: .builtIn) { host in
            let client = try await host.connect()
            print("route          median round trip   p99 round trip   messages/s (\(Self.window) in flight)")
            for route in ["echo", "example.echo"] {
                _ = try await Self.roundTrips(client, route: route, count: 200) // warm-up
                let samples = try await Self.roundTrips(client, route: route, count: Self.roundTrips).sorted()
                let rate = try await Self.throughput(client, route: route)
                print(Self.column(route, 15) + Self.micros(samples[samples.count / 2]) + Self.micros(samples[samples.count * 99 / 100]) + "\(Int(rate))")
            }
        }
    }

    private static func roundTrips(_ client: TestWebSocketClient, route: String, count: Int) async throws -> [Duration] {
        var samples: [Duration] = []
        for index in 0..<count {
            let started = ContinuousClock.now
            let reply = try await client.request(Message(headers: ["route": route, "token": "\(index)"], payload: payload))
            samples.append(.now - started)
            try require(reply.headers["token"] == "\(index)" && reply.payload.readableBytes == payload.count,
                        "\(route): request \(index) was answered by token \(reply.headers["token"] ?? "none"), \(reply.payload.readableBytes) bytes")
        }
        return samples
    }

    /// Messages per second with `window` requests in flight.
    private static func throughput(_ client: TestWebSocketClient, route: String) async throws -> Double {
        let started = ContinuousClock.now
        var sent = 0
        while sent < window {
            try await client.send(["route": route, "token": "\(sent)"], payload: payload)
            sent += 1
        }
        for received in 0..<pipelined {
            let reply = try await client.nextMessage()
            try require(reply.headers["token"] == "\(received)", "\(route): reply \(received) came with token \(reply.headers["token"] ?? "none")")
            if sent < pipelined {
                try await client.send(["route": route, "token": "\(sent)"], payload: payload)
                sent += 1
            }
        }
        return Double(pipelined) / (ContinuousClock.now - started).inSeconds
    }

    private static func micros(_ duration: Duration) -> String {
        column("\(Int(duration.inSeconds * 1e6)) µs", 20)
    }

    private static func column(_ text: String, _ width: Int) -> String {
        text.padding(toLength: width, withPad: " ", startingAt: 0)
    }
}
