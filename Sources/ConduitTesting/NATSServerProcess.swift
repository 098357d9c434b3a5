import Foundation
import NIOCore
import NIOPosix

/// A real `nats-server` (Debian package nats-server) on a free port, for the length of a test.
/// It can be killed and started again on the same port, to test reconnection.
public final class NATSServerProcess: @unchecked Sendable {
    public let port: Int
    private let configuration: String
    private let configurationFile = NSTemporaryDirectory() + "conduit-nats-\(UUID().uuidString).conf"
    // Only touched by the test's own task.
    private var process: Process?

    public var url: String { "nats://127.0.0.1:\(port)" }

    /// `configuration` is extra nats-server configuration (`max_payload: 65536`, `authorization { … }`).
    public init(configuration: String = "") throws {
        port = try Self.freePort()
        self.configuration = configuration
        try "listen: 127.0.0.1:\(port)\n\(configuration)\n".write(toFile: configurationFile, atomically: true, encoding: .utf8)
    }

    /// Runs `body` with a started server and stops it afterwards.
    public static func run<Result: Sendable>(configuration: String = "", _ body: (NATSServerProcess) async throws -> Result) async throws -> Result {
        let server = try NATSServerProcess(configuration: configuration)
        try await server.start()
        defer { server.stop() }
        return try await body(server)
    }

    /// Starts the server and waits until it accepts connections.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.executable())
        process.arguments = ["-c", configurationFile]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        try await waitUntil(timeout: .seconds(20)) { await Self.accepts(port: self.port) }
    }

    /// Kills the server at once (SIGKILL: no goodbye to its clients).
    public func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: configurationFile)
    }

    private static func executable() throws -> String {
        for path in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw TestClientError.missingTool("nats-server is not installed (apt-get install nats-server; scripts/test.sh does it)")
    }

    /// A TCP port nothing listens on now, for a server a test binds by number (a cluster's
    /// route ports, a host's fixed port), taken below Linux's ephemeral range (32768 up): an
    /// ephemeral one was free again once closed, and another test binding port 0 took it
    /// meanwhile ("address already in use" in a full run).
    public static func freePort() throws -> Int {
        let group = MultiThreadedEventLoopGroup.singleton
        var lastError: (any Error)?
        for _ in 0..<100 {
            let port = Int.random(in: 20_000..<32_768)
            do {
                let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: port).wait()
                try? channel.close().wait()
                return port
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    private static func accepts(port: Int) async -> Bool {
        let group = MultiThreadedEventLoopGroup.singleton
        guard let channel = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get() else { return false }
        try? await channel.close()
        return true
    }
}
