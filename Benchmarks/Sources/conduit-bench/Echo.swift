import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// Drives an echo server with N connections × K requests in flight of S bytes for a fixed time
/// and prints one JSON line: messages/s, MB/s, round-trip percentiles, client and server CPU.
/// Runs on one event loop thread; pin it (taskset) to a core apart from the server's.
struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Echo round trips over N connections × K in flight.")

    @OptionGroup var target: Target
    @Option(help: "conduit (route=ROUTE messages), websocket (plain binary echo) or tcp (raw echo).")
    var proto: String = "conduit"
    @Option var route = "echo"
    @Option(name: .customLong("connections")) var connections = 1
    @Option(name: .customLong("in-flight")) var inFlight = 1
    @Option(help: "Payload bytes per request.") var size = 64
    @Option(help: "Seconds measured, after the warm-up.") var seconds = 5.0
    @Option(help: "Seconds of warm-up.") var warmup = 1.0
    @Flag(help: "Conduit only: resume (SPEC §9) on, `resume=0` on the URL; requests carry positions, replies are acknowledged every 32.")
    var resume = false
    @Flag(help: "Conduit only, without resume: one more header on each request (`n: 1234567`, as long as a position), which the echo sends back: what a header each way costs, beside resume.")
    var extraField = false
    @Option(help: "Nanoseconds the tool busy-waits per reply, as if it did more work per message: how the tool's own speed moves the server's figures.")
    var toolWorkNs: UInt64 = 0

    func run() async throws {
        guard let proto = Protocol(rawValue: proto) else { throw ValidationError("unknown --proto \(self.proto)") }
        guard !resume || proto == .conduit else { throw ValidationError("--resume is for --proto conduit") }
        guard !extraField || (proto == .conduit && !resume) else { throw ValidationError("--extra-field is for --proto conduit without --resume") }
        let workload = Workload(proto: proto, route: route, size: size, resume: resume, extraField: extraField, toolWorkNanoseconds: toolWorkNs)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let recorder = Recorder(eventLoop: group.next())
        var channels: [any Channel] = []
        for index in 0..<connections {
            channels.append(try await Connect.open(
                host: target.host, port: target.port, path: target.path(for: index + 1) + (resume ? "&resume=0" : ""), workload: workload, inFlight: inFlight, recorder: recorder))
        }
        try await Task.sleep(for: .seconds(warmup))

        let server = target.serverPid.map(ProcessStats.init)
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
                label: target.label, proto: proto.rawValue, connections: connections, inFlight: inFlight, size: size,
                seconds: wall, messages: recorder.completed, histogram: recorder.histogram,
                clientCPUSeconds: Double(client.cpuNanoseconds() - clientStart) / 1e9,
                serverCPUSeconds: server.map { Double($0.cpuNanoseconds() - serverStart) / 1e9 },
                serverPeakRSSKiB: server?.memoryKiB("VmHWM"), serverAnonRSSKiB: server?.memoryKiB("RssAnon"),
                errors: recorder.errors
            )
        }.get()
        for channel in channels { try? await channel.close() }
        try await group.shutdownGracefully()
        print(result.jsonLine)
        FileHandle.standardError.write(Data((result.summary + "\n").utf8))
        if !result.errors.isEmpty || result.messages == 0 { throw ExitCode(1) }
    }
}
