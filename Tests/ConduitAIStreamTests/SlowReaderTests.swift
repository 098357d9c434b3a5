import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// SPEC §3 "Byte streams lose no bytes": a token stream to a client that can't take more
/// pauses instead of dropping tokens.
@Suite("AI stream to a congested client", .serialized, .timeLimit(.minutes(3)))
struct SlowReaderTests {
    @Test func aStreamPausesWhileItsClientIsAwayAndLosesNoToken() async throws {
        let yaml = """
            limits:
              pushBufferMessages: 64
            routes:
              - route: ai.*
                handler: ai
                options: {backend: builtin, tokensPerSecond: 200, maxTokens: 1000}
            """
        try await TestHost.run(yaml: yaml, catalog: .aiTests) { host in
            let first = try await host.connect(client: "ai-away")
            // The close in the same write: the client goes away as the stream starts. Closed
            // after its first token, a machine loaded by the rest of the suite let all five
            // seconds of tokens reach the first socket, and nothing was left to wait for.
            try await first.sendThenClose(Message(headers: ["route": "ai.chat.generate", "token": "s"], payload: Array("tell me".utf8)))
            var stream = ReceivedStream()
            // What reached the first socket before it closed, up to the host's close frame.
            while true {
                do { stream.tokens.append(try await first.nextMessage()) } catch TestClientError.closedByServer { break }
            }
            // With the client away its 64-message buffer fills long before the 1,000 tokens (five seconds) end: the
            // stream must wait there instead of dropping the oldest.
            try await waitUntil { host.client("ai-away")?.buffered ?? 0 >= 32 }
            let again = try await host.connect(client: "ai-away")
            try await again.read(into: &stream)
            #expect(stream.last?.headers["error"] == nil)
            let missing = Set(0...1000).subtracting(stream.indices)
            #expect(missing.isEmpty, "\(missing.count) tokens never arrived")
            #expect(stream.indices == stream.indices.sorted(), "in order")
            #expect(stream.indices.count == 1001, "each once")
            #expect(host.client("ai-away")?.dropped == 0)
        }
    }

    /// A client that stays connected and reads nothing: its stream waited for it with no limit,
    /// keeping its place among `maxStreams` for good (one such client could take them all).
    /// After `congestionTimeoutSeconds` the stream ends with `UnavailableError`, its place free.
    @Test func aStreamToAClientThatReadsNothingEndsAndGivesItsPlaceBack() async throws {
        let yaml = """
            routes:
              - route: ai.*
                handler: ai
                options: {backend: builtin, maxTokens: 1000000, maxStreams: 1, congestionTimeoutSeconds: 1}
            """
        try await TestHost.run(yaml: yaml, catalog: .aiTests) { host in
            let deaf = try await host.connect(client: "ai-deaf", receiveBufferBytes: 4096)
            try await deaf.pauseReading()
            try await deaf.send(["route": "ai.chat.generate", "token": "s", "prompt": "go on and on"])
            // The socket's buffers fill first: on a machine loaded by the whole suite the tokens
            // came slowly enough that this took past 10 s. What is queued stays (nothing reads).
            try await waitUntil(timeout: .seconds(60)) { (host.client("ai-deaf")?.outboundQueuedBytes ?? 0) > 0 }
            let other = try await host.connect(client: "ai-other")
            // Refused while the stream holds the only place, then served once it has ended.
            try await waitUntil(timeout: .seconds(60)) {
                try await other.send(["route": "ai.chat.generate", "token": "t", "prompt": "hi", "maxTokens": "1"])
                return try await other.nextMessage(timeout: .seconds(30)).headers["error"] == nil
            }
        }
    }

    /// A stream aborted (or cancelled) while it waits for its congested client to take more:
    /// the cancelled wait looked like the congestion timeout, and the stream ended with a false
    /// `UnavailableError` ("the client took nothing for 30 s") instead of `aborted: true`.
    @Test func aStreamAbortedWhileItWaitsForItsClientEndsAsAborted() async throws {
        let yaml = """
            limits:
              congestionHighWaterBytes: 4096
              congestionLowWaterBytes: 1024
            routes:
              - route: ai.*
                handler: ai
                options: {backend: builtin, maxTokens: 1000000, congestionTimeoutSeconds: 30}
            """
        try await TestHost.run(yaml: yaml, catalog: .aiTests) { host in
            let slow = try await host.connect(client: "ai-paused", receiveBufferBytes: 4096)
            try await slow.pauseReading()
            try await slow.send(["route": "ai.chat.generate", "token": "s", "prompt": "go on and on"])
            // The socket's buffers full and the queue standing still, not empty: the stream
            // waits for the client to take more. Not "congested" as the directory says it: the
            // queue can shrink into the band between the marks as the kernel takes a little
            // more, and the stream waits there until the low-water mark (1 in 3 runs of the
            // suite did, and the wait for congestion ran out).
            var queued = -1
            var samples: [Int] = []
            var standing = false
            // Up to a minute: beside two busy loops the kernel's buffers took 30 s of tokens
            // and more before anything was queued.
            for _ in 0..<200 {
                let before = queued
                try await Task.sleep(for: .milliseconds(300))
                queued = host.client("ai-paused")?.outboundQueuedBytes ?? 0
                samples.append(queued)
                standing = queued == before && queued > 0
                if standing { break }
            }
            try #require(standing, "queued bytes every 300 ms: \(samples)")
            try await slow.send(["route": "ai.chat.abort", "stream": "s", "token": "a"])
            try await slow.resumeReading()
            let last = try await slow.nextMessage(timeout: .seconds(20)) { $0.headers["token"] == "s" && $0.headers["complete"] == "true" }
            #expect(last.headers["error"] == nil, "\(last.headers): \(String(buffer: last.payload))")
            #expect(last.headers["aborted"] == "true")
        }
    }
}
