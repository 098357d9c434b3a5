import Benchmark
import ConduitWire
import NIOCore

/// Codec micro-benchmarks; allocation counts are the stable part (gated by thresholds).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions],
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )
    let request = Message(headers: [HeaderName.route: "echo", HeaderName.token: "42"], payload: ByteBuffer(repeating: 0x61, count: 64))
    let encoded = try! request.encoded()
    let large = Message(headers: [HeaderName.route: "echo"], payload: ByteBuffer(repeating: 0x61, count: 1 << 20))

    Benchmark("decode 64 B message") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Message(decoding: encoded)) }
    }
    Benchmark("encode 64 B message") { benchmark in
        var buffer = ByteBuffer()
        for _ in benchmark.scaledIterations {
            buffer.clear()
            try request.encode(into: &buffer)
            blackHole(buffer)
        }
    }
    Benchmark("split and reassemble 1 MiB") { benchmark in
        for _ in benchmark.scaledIterations {
            var assembler = ChunkAssembler(limit: 1 << 21)
            let parts = large.split()
            for part in parts.dropLast() { try assembler.append(part.payload) }
            blackHole(try assembler.complete(with: parts.last!.payload))
        }
    }
}
