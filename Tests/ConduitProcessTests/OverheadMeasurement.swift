import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

/// What the child process costs next to in-process echo: the same requests to `echo` and to
/// `example.echo` (handlers/example.py), one host, one run. Opt-in, as it takes a while:
/// `CONDUIT_MEASURE_PROCESS=1 swift test --filter OverheadMeasurement`.
@Suite("Process handler overhead", .serialized)
struct OverheadMeasurement {
    static let enabled = ProcessInfo.processInfo.environment["CONDUIT_MEASURE_PROCESS"] == "1"
    static let roundTrips = 2_000
    static let pipelined = 20_000
    static let window = 64
    static let payload = [UInt8](repeating: 0x61, count: 64)

    @Test(.enabled(if: enabled), .timeLimit(.minutes(5)))
    func echoInProcessVersusChildProcess() async throws {
        try await TestHost.run(yaml: Repository.yaml(), catalog: .processTests) { host in
            let client = try await host.connect()
            print("route          median round trip   p99 round trip   messages/s (\(Self.window) in flight)")
            for route in ["echo", "example.echo"] {
                _ = try await Self.roundTrips(client, route: route, count: 200) // warm-up
                let samples = try await Self.roundTrips(client, route: route, count: Self.roundTrips).sorted()
                let rate = try await Self.throughput(client, route: route)
                print("\(route.padding(toLength: 15, withPad: " ", startingAt: 0))\(Self.micros(samples[samples.count / 2]))\(Self.micros(samples[samples.count * 99 / 100]))\(Int(rate))")
            }
        }
    }

    private static func roundTrips(_ client: TestWebSocketClient, route: String, count: Int) async throws -> [Duration] {
        var samples: [Duration] = []
        for index in 0..<count {
            let started = ContinuousClock.now
            let reply = try await client.request(Message(headers: ["route": route, "token": "\(index)"], payload: payload))
            samples.append(.now - started)
            try #require(reply.headers["token"] == "\(index)" && reply.payload.readableBytes == payload.count)
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
            try #require(reply.headers["token"] == "\(received)")
            if sent < pipelined {
                try await client.send(["route": route, "token": "\(sent)"], payload: payload)
                sent += 1
            }
        }
        let elapsed = ContinuousClock.now - started
        return Double(pipelined) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    private static func micros(_ duration: Duration) -> String {
        let micros = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
        return "\(Int(micros)) µs".padding(toLength: 20, withPad: " ", startingAt: 0)
    }
}
