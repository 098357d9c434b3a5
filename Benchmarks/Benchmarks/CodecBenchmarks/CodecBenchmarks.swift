import Benchmark
import ConduitWire
import NIOCore

/// Codec micro-benchmarks; allocation counts are the stable part (gated by thresholds).
/// Names are file-name safe: `thresholds check` looks the Thresholds/ files up by the raw name.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions],
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        // Allocation counts are exact on every run, so CI holds them to the committed
        // Thresholds/ with no tolerance: a new allocation, or a saved one, must be recorded.
        thresholds: [.mallocCountTotal: .init(absolute: BenchmarkThresholds.Absolute.strict)]
    )
    let request = Message(headers: [HeaderName.route: "echo", HeaderName.token: "42"], payload: ByteBuffer(repeating: 0x61, count: 64))
    let encoded = try! request.encoded()
    let large = Message(headers: [HeaderName.route: "echo"], payload: ByteBuffer(repeating: 0x61, count: 1 << 20))

    Benchmark("decode_64B_message") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Message(decoding: encoded)) }
    }
    Benchmark("encode_64B_message") { benchmark in
        // Into a new buffer, as the host does for every reply frame.
        for _ in benchmark.scaledIterations { blackHole(try request.encoded()) }
    }
    // Resume's fields as the host handles them (SPEC §9): `pos` set aside while decoding, into
    // a header list reused per message; `pos` and `ack` appended while encoding into a buffer
    // reused per frame batch. Beside the two above they give the codec's price of resume.
    let numbered = try! Message(
        headers: [HeaderName.route: "echo", HeaderName.token: "42", ResumeHeader.position: "1234567"],
        payload: ByteBuffer(repeating: 0x61, count: 64)).encoded()
    Benchmark("decode_64B_message_setting_pos_aside") { benchmark in
        var headers = Headers()
        for _ in benchmark.scaledIterations {
            var positions = SetAsideNumbers(ResumeHeader.ack, ResumeHeader.position)
            blackHole(try Message(decoding: numbered, reusing: &headers, settingAside: &positions))
            blackHole(positions.secondValue)
        }
    }
    Benchmark("encode_64B_message_appending_pos_and_ack") { benchmark in
        let field = Message.AppendedField(ResumeHeader.positionField, 1_234_567, alsoReplacing: ResumeHeader.ackField, alsoNumber: 1_234_500)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(1 << 16)
        for iteration in benchmark.scaledIterations {
            if iteration & 255 == 0 { buffer.clear() }
            request.encode(into: &buffer, validatedSize: try request.validatedEncodedSize(appending: field), appending: field)
        }
        blackHole(buffer)
    }
    Benchmark("split_and_reassemble_1MiB") { benchmark in
        for _ in benchmark.scaledIterations {
            var assembler = ChunkAssembler(limit: 1 << 21)
            let parts = large.split()
            for part in parts.dropLast() { try assembler.append(part.payload) }
            blackHole(try assembler.complete(with: parts.last!.payload))
        }
    }
}
