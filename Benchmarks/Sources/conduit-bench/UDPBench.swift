import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// Measures the host's UDP handler: one WebSocket client binds a socket (`udp.bind`,
/// `udp.readStart`), the tool sends it N numbered datagrams of S bytes from a datagram channel
/// and counts the `udp.data` pushes that come back (order and loss exact). Prints one JSON line.
/// Runs on one event loop thread; pin it (taskset) to a core apart from the server's.
struct UDPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp", abstract: "Datagrams to the host's UDP handler, delivered as pushes over one WebSocket."
    )

    @OptionGroup var target: Target
    @Option(help: "Datagrams to send.") var datagrams = 1_000_000
    @Option(help: "Bytes per datagram (at least 8: the first 8 carry its number).") var size = 64
    @Option(help: "Most datagrams sent but not yet pushed back: keep them within the host's receive buffer (4096 × 64 B fit its default 4 MiB; 8192 overflowed it).")
    var window = 4096
    @Option(help: """
        Datagrams per send through UDP segmentation offload (1: none; the kernel takes at most 64). \
        Without it the kernel's per-datagram send work makes the tool the limit near 150k/s.
        """)
    var segments = 64
    @Option(help: "Seconds without a push after which the rest count as lost.") var idle = 1.0

    func validate() throws {
        guard size >= 8 else { throw ValidationError("--size must be at least 8") }
        guard datagrams > 0, window > 0 else { throw ValidationError("--datagrams and --window must be positive") }
        guard (1...64).contains(segments), segments * size <= 65_507 else {
            throw ValidationError("--segments must be 1…64, and segments × size at most 65507 bytes")
        }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let flow = DatagramFlow(eventLoop: group.next(), total: datagrams, size: size, window: window, segments: segments)
        let webSocket = try await Connect.webSocket(
            host: target.host, port: target.port, path: target.path(for: 1), eventLoop: flow.eventLoop
        ) { UDPControl(flow: flow, writer: $0) }
        let control = try await webSocket.pipeline.handler(type: UDPControl.self).get()
        let bound = try await control.udp("udp.bind")
        _ = try await control.udp("udp.readStart")
        var bootstrap = DatagramBootstrap(group: flow.eventLoop)
        if segments > 1 { bootstrap = bootstrap.channelOption(.datagramSegmentSize, value: CInt(size)) }
        let sender = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        let destination = try SocketAddress.makeAddressResolvingHost(target.host, port: bound.port)

        let server = target.serverPid.map(ProcessStats.init)
        let client = ProcessStats.current
        let (serverStart, clientStart) = (server?.cpuNanoseconds() ?? 0, client.cpuNanoseconds())
        try await flow.eventLoop.flatSubmit { flow.run(on: sender, to: destination, idle: .nanoseconds(Int64(idle * 1e9))) }.get()
        let serverCPUSeconds = server.map { Double($0.cpuNanoseconds() - serverStart) / 1e9 }
        let clientCPUSeconds = Double(client.cpuNanoseconds() - clientStart) / 1e9

        let state = try await control.udp("udp.getState")
        let result = try await flow.eventLoop.submit {
            UDPReport(
                label: target.label, size: size, window: window, flow: flow, receivedByHost: state.received,
                clientCPUSeconds: clientCPUSeconds, serverCPUSeconds: serverCPUSeconds
            )
        }.get()
        try? await sender.close()
        try? await webSocket.close()
        try await group.shutdownGracefully()
        print(result.jsonLine)
        FileHandle.standardError.write(Data((result.summary + "\n").utf8))
        if !result.errors.isEmpty || result.pushes == 0 { throw ExitCode(1) }
    }
}
