import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// Drives an echo server with N connections × K requests in flight of S bytes for a fixed time
/// and prints one JSON line: messages/s, MB/s, round-trip percentiles, client and server CPU.
/// Runs on one event loop thread; pin it (taskset) to a core apart from the server's.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conduit-bench")

    @Option(help: "conduit (route=ROUTE messages), websocket (plain binary echo) or tcp (raw echo).")
    var proto: String = "conduit"
    @Option var host = "127.0.0.1"
    @Option var port: Int
    @Option(help: "WebSocket path; {i} becomes the connection's index, e.g. /{i}/0?key=KEY for the host.")
    var path = "/"
    @Option var route = "echo"
    @Option(name: .customLong("connections")) var connections = 1
    @Option(name: .customLong("in-flight")) var inFlight = 1
    @Option(help: "Payload bytes per request.") var size = 64
    @Option(help: "Seconds measured, after the warm-up.") var seconds = 5.0
    @Option(help: "Seconds of warm-up.") var warmup = 1.0
    @Option(help: "The server's pid, for its CPU time per message and peak RSS.") var serverPid: Int32?
    @Option(help: "A label copied into the output.") var label = ""

    func run() async throws {
        guard let proto = Protocol(rawValue: proto) else { throw ValidationError("unknown --proto \(self.proto)") }
        let workload = Workload(proto: proto, route: route, size: size)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let recorder = Recorder(eventLoop: group.next())
        var channels: [any Channel] = []
        for index in 0..<connections {
            let path = path.replacingOccurrences(of: "{i}", with: "\(index + 1)")
            channels.append(try await Connect.open(host: host, port: port, path: path, workload: workload, inFlight: inFlight, recorder: recorder))
        }
        try await Task.sleep(for: .seconds(warmup))

        let server = serverPid.map(ProcessStats.init)
        let client = ProcessStats.current
        let (serverStart, clientStart, started) = try await recorder.eventLoop.submit {
            recorder.startMeasuring()
            return (server?.cpuNanoseconds() ?? 0, client.cpuNanoseconds(), NIODeadline.now())
        }.get()
        try await Task.sleep(for: .seconds(seconds))
        let result = try await recorder.eventLoop.submit {
            recorder.measuring = false
            let wall = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            return Report(
                label: label, proto: proto.rawValue, connections: connections, inFlight: inFlight, size: size,
                seconds: wall, messages: recorder.completed, histogram: recorder.histogram,
                clientCPUSeconds: Double(client.cpuNanoseconds() - clientStart) / 1e9,
                serverCPUSeconds: server.map { Double($0.cpuNanoseconds() - serverStart) / 1e9 },
                serverPeakRSSKiB: server?.memoryKiB("VmHWM"), errors: recorder.errors
            )
        }.get()
        for channel in channels { try? await channel.close() }
        try await group.shutdownGracefully()
        print(result.jsonLine)
        FileHandle.standardError.write(Data((result.summary + "\n").utf8))
        if !result.errors.isEmpty || result.messages == 0 { throw ExitCode(1) }
    }
}
