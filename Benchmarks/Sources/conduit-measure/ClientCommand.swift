import ArgumentParser
import ConduitCLI
import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore

/// Echo round trips of the Swift client: the median and p99 of sequential `request`s, then
/// the messages per second of pipelined `send`s (a window of messages in flight).
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client", abstract: "The Swift client's echo round trips and pipelined messages per second."
    )

    @Option(help: "Payload bytes per echo.") var bytes = 64

    static let rounds = 5_000
    static let total = 50_000
    static let window = 64

    func validate() throws {
        guard bytes >= 0 else { throw ValidationError("--bytes must not be negative") }
    }

    func run() async throws {
        let payload = ByteBuffer(repeating: 0x61, count: bytes)
        try await TestHost.run(catalog: .builtIn) { host in
            let conduit = Conduit(id: "bench", sharedKey: host.sharedKey, port: host.port, ipcPort: host.endpoints.ipcPort)
            try await conduit.connect()
            defer { conduit.close() }
            var samples: [Duration] = []
            samples.reserveCapacity(Self.rounds)
            for _ in 0..<Self.rounds {
                let started = ContinuousClock.now
                _ = try await conduit.request(route: "echo", payload: payload)
                samples.append(.now - started)
            }
            samples.sort()
            let (received, elapsed) = try await Self.pipelined(conduit, payload: payload)
            print("client bench: payload \(payload.readableBytes) B; request round trip median \(samples[Self.rounds / 2]), "
                + "p99 \(samples[Self.rounds * 99 / 100]) over \(Self.rounds); pipelined echo \(Int(Double(received) / elapsed.inSeconds)) "
                + "msg/s (\(Self.total) messages, window \(Self.window))")
            try require(received == Self.total, "\(received) of \(Self.total) pipelined echoes came back")
        }
    }

    /// `window` echoes in flight; the receive handler sends the next one as each echo arrives,
    /// so nothing but the client and the host is measured. Gives up after two minutes.
    private static func pipelined(_ conduit: Conduit, payload: ByteBuffer) async throws -> (received: Int, elapsed: Duration) {
        let counts = NIOLockedValueBox((sent: 0, received: 0))
        let (done, finish) = AsyncStream<Void>.makeStream()
        conduit.receive { _ in
            let (sendMore, finished) = counts.withLockedValue { counts in
                counts.received += 1
                let more = counts.sent < total
                if more { counts.sent += 1 }
                return (more, counts.received == total)
            }
            if sendMore { _ = try? conduit.send(["route": "echo"], payload: payload) }
            if finished { finish.finish() }
        }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(120))
            finish.finish()
        }
        let start = ContinuousClock.now
        for _ in 0..<window {
            counts.withLockedValue { $0.sent += 1 }
            try conduit.send(["route": "echo"], payload: payload)
        }
        for await _ in done {}
        let elapsed = ContinuousClock.now - start
        watchdog.cancel()
        return (counts.withLockedValue { $0.received }, elapsed)
    }
}
