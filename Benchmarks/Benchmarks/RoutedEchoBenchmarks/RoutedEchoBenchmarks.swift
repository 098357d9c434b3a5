import Benchmark
import ConduitEcho
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore

/// Allocations of the routed path: a real host in this process (echo route, its own event
/// loops), driven over loopback by a blocking client that allocates nothing, so every
/// allocation counted is the host's. The gate: none per message once the connection is warm.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        maxDuration: .seconds(3),
        maxIterations: 50,
        // An iteration is 1,000 echoes; a stray allocation of the event loop (a timer, a
        // resized receive buffer) may land in one, a per-message one would show as 1,000.
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 5])]
    )
    let server = RunningHost()

    for inFlight in [1, 8] {
        Benchmark(
            "routed_echo_64B_x1000_\(inFlight)_in_flight",
            configuration: .init(setup: { try await server.start() }, teardown: { await server.stop() })
        ) { benchmark in
            let client = server.client!
            for _ in benchmark.scaledIterations {
                for _ in 0..<(1000 / inFlight) { try client.roundTrip(inFlight: inFlight) }
            }
        }
    }
}

/// A host run for the length of one benchmark, and a warmed-up client connected to it.
final class RunningHost: @unchecked Sendable {
    private(set) var client: BlockingEchoClient?
    private var finish: AsyncStream<Void>.Continuation?
    private var task: Task<Void, any Error>?

    func start() async throws {
        let (ready, readyContinuation) = AsyncStream<Int>.makeStream()
        let (done, finish) = AsyncStream<Void>.makeStream()
        self.finish = finish
        task = Task {
            try await TestHost.run(catalog: HandlerCatalog([HandlerKind(EchoHandler.self, name: "echo")])) { host in
                readyContinuation.yield(host.port)
                for await _ in done {}
            }
        }
        var ports = ready.makeAsyncIterator()
        guard let port = await ports.next() else { throw BlockingEchoClient.Failure("the host did not start") }
        let client = try BlockingEchoClient(port: port, path: "/1/0?key=\(TestHost.defaultKey)")
        // Warm up: the receive buffer's size and every lazily made structure settle.
        for _ in 0..<2000 { try client.roundTrip(inFlight: 8) }
        self.client = client
    }

    func stop() async {
        client = nil
        finish?.finish()
        _ = try? await task?.value
    }
}
