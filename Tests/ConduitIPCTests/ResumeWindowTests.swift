@testable import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOCore
import NIOPosix
import Testing

/// The window's storage (SPEC §9): messages kept as encoded bytes in one buffer, the large
/// ones' payloads copied from apart from their frames, in one order of positions through
/// acknowledgements, evictions and replays. Three minutes a test: its long replays took over one
/// on a machine loaded beside the suite.
@Suite("Resume window", .serialized, .timeLimit(.minutes(3)))
struct ResumeWindowTests {
    /// Sizes around the line between payloads encoded with their frame and payloads written
    /// apart (1024 bytes).
    static func payloadSize(_ n: Int) -> Int {
        [3, 1023, 1024, 40, 5000, 0, 700][n % 7]
    }

    /// The payloads of the next `count` messages on `socket`, one after the other (a replayed
    /// message's parts).
    static func joinedPayloads(of count: Int, from socket: TestWebSocketClient) async throws -> ByteBuffer {
        var joined = ByteBuffer()
        for _ in 0..<count {
            var message = try await socket.nextMessage()
            joined.writeBuffer(&message.payload)
        }
        return joined
    }

    static func push(_ n: Int) -> Message {
        numberedPush(n, payload: ByteBuffer(repeating: UInt8(n % 251), count: payloadSize(n)))
    }

    @Test func smallAndLargeMessagesReplayInOrderAfterManyAcknowledgements() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("w1")!
            let (socket, greeting) = try await ResumeTests.resume(host, id: "w1")
            let epoch = try #require(greeting.headers["epoch"])
            let total = 700
            for n in 1...total {
                host.host.directory.push(Self.push(n), to: id)
                _ = try await socket.nextMessage()
                // Acknowledged in uneven steps, so the log's start moves and its bytes move back.
                if n % 13 == 0 { try await socket.send(["ack": "\(n - 5)"]) }
            }
            let acknowledged = UInt64(total / 13 * 13 - 5)
            try await waitUntil { host.client("w1")?.resume?.acknowledged == acknowledged }
            #expect(host.client("w1")?.resume?.windowMessages == total - Int(acknowledged))
            // The window takes the host's budget in steps of 16 KiB: never less than the memory
            // it takes (at least its bytes), at most two steps more.
            let window = try #require(host.client("w1")?.resume)
            let used = host.host.directory.budget.usedBytes
            #expect(window.windowMemoryBytes >= window.windowBytes)
            #expect(used >= window.windowMemoryBytes && used <= window.windowMemoryBytes + 2 * 16 * 1024, "\(used) budget bytes for \(window)")
            try await socket.close()
            try await socket.waitUntilClosed()

            let received = acknowledged + 2
            let (again, resumed) = try await ResumeTests.resume(host, id: "w1", received: received, epoch: epoch)
            #expect(resumed.headers["replayed"] == "\(total - Int(received))" && resumed.headers["lost"] == "0")
            for n in Int(received + 1)...total {
                let message = try await again.nextMessage()
                #expect(message.headers["pos"] == "\(n)" && message.headers["n"] == "\(n)")
                #expect(message.payload == Self.push(n).payload)
            }
            try await again.send(["ack": "\(total)"])
            try await waitUntil { host.client("w1")?.resume?.windowBytes == 0 }
            #expect(host.client("w1")?.resume?.windowMessages == 0)
            try await Self.expectEmptied(host, "w1", socket: again)
        }
    }

    /// An emptied window is charged just its memory: the storage it keeps for the next
    /// messages (a log of at most 64 KiB, and short lists); once its socket is gone, almost none.
    static func expectEmptied(_ host: TestHost, _ id: String, socket: TestWebSocketClient) async throws {
        let emptied = try #require(host.client(id)?.resume)
        #expect(host.host.directory.budget.usedBytes == emptied.windowMemoryBytes && emptied.windowMemoryBytes <= 66 * 1024)
        try await socket.close()
        try await socket.waitUntilClosed()
        try await waitUntil { (host.client(id)?.resume?.windowMemoryBytes ?? .max) < 1024 }
        #expect(host.host.directory.budget.usedBytes == host.client(id)?.resume?.windowMemoryBytes)
    }

    /// A long replay goes out a batch at a time, the host's event loop reading its sockets in
    /// between, and what is pushed meanwhile follows it in order. Counted in turns of the loop
    /// (a wait's length is no measure: on a loaded machine a 1 s bound failed): decoded and
    /// written in one go, 80,000 small replayed messages took one turn (1.8 s, debug build);
    /// batches whose flush was a task queued after them ran in chains (that task made the next
    /// batch due before the loop looked; 60 in one turn, 600 ms).
    @Test func aLongReplayLeavesTheEventLoopReading() async throws {
        // The host alone on a loop of its own: what the probe sees there is the host's work.
        let turns = EventLoopTurns()
        let hostLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1, metricsDelegate: turns)
        try await TestHost.run(catalog: .ipcTests, group: hostLoop) { host in
            let id = ClientID("long-replay")!
            let replayed = 80_000
            let later = 100
            let epoch = try await Self.windowOfPushes(replayed, host, id: "long-replay")
            turns.watch { host.client("long-replay")?.resume?.replayed ?? 0 }
            let (again, resumed) = try await ResumeTests.resume(host, id: "long-replay", received: 0, epoch: epoch)
            #expect(resumed.headers["replayed"] == "\(replayed)")
            for n in replayed + 1...replayed + later { host.host.directory.push(numberedPush(n), to: id) }
            let received = try await again.nextMessages(replayed + later, timeout: .seconds(60))
            #expect(received.map { $0.headers["pos"] } == (1...replayed + later).map { "\($0)" }, "every position once, in order")
            #expect(received.map { $0.headers["n"] } == (1...replayed + later).map { "\($0)" }, "the pushes in order")
            #expect(host.client("long-replay")?.resume?.replayed == replayed)
            let longestStep = turns.longestStep(from: 0, to: replayed)
            print("replay of \(replayed): at most \(longestStep) messages in one turn of the host's loop; its longest turn took \(turns.longestTurn.nanoseconds / 1_000_000) ms")
            // A batch a turn, now and then two or three: a loaded machine that stalls the loop's
            // thread after a batch makes the next one due before the loop looks (a third of
            // them on CI, every test running at once).
            let perBatch = ResumeState.Replay.batchBound.messages
            #expect(longestStep <= 16 * perBatch, "\(longestStep) replayed messages in one turn of the host's loop")
            try await again.close()
        }
        try await hostLoop.shutdownGracefully()
    }

    /// `count` numbered pushes (small, or with `payload`) sent to a resuming socket of `id` and read there, the socket
    /// then closed: the window holds them all. The id's epoch.
    static func windowOfPushes(_ count: Int, _ host: TestHost, id: String, payload: (Int) -> ByteBuffer? = { _ in nil }) async throws -> String {
        let (socket, greeting) = try await ResumeTests.resume(host, id: id)
        // Pushed a run at a time, each read before the next: faster than the socket, pushes
        // would pass the outbound queue's bound and the oldest be dropped.
        for run in stride(from: 1, through: count, by: 500) {
            for n in run..<min(run + 500, count + 1) { host.host.directory.push(numberedPush(n, payload: payload(n)), to: ClientID(id)!) }
            _ = try await socket.nextMessages(min(500, count + 1 - run), timeout: .seconds(30))
        }
        try await socket.close()
        try await socket.waitUntilClosed()
        return try #require(greeting.headers["epoch"])
    }

    @Test func pastTheWindowSmallMessagesAreCountedExactly() async throws {
        let yaml = "limits:\n  resumeWindowBytes: 65536\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("w2")!
            let (socket, greeting) = try await ResumeTests.resume(host, id: "w2")
            let epoch = try #require(greeting.headers["epoch"])
            let total = 3000
            for n in 1...total {
                host.host.directory.push(numberedPush(n, payload: ByteBuffer(repeating: UInt8(n % 251), count: 100)), to: id)
            }
            for _ in 1...total { _ = try await socket.nextMessage() }
            let window = try #require(host.client("w2")?.resume)
            #expect(window.windowBytes <= 65536 && window.windowBytes > 65536 - 200)
            try await socket.close()

            let (again, resumed) = try await ResumeTests.resume(host, id: "w2", received: 0, epoch: epoch)
            let replayed = try #require(Int(resumed.headers["replayed"] ?? ""))
            let lost = try #require(Int(resumed.headers["lost"] ?? ""))
            #expect(replayed + lost == total && replayed == window.windowMessages)
            for pos in (lost + 1)...total {
                let message = try await again.nextMessage()
                #expect(message.headers["pos"] == "\(pos)" && message.headers["n"] == "\(pos)")
                #expect(message.payload == ByteBuffer(repeating: UInt8(pos % 251), count: 100))
            }
            #expect(host.client("w2")?.resume?.lost == lost)
        }
    }
}

extension ResumeWindowTests {
    /// Echoed requests read several at once, small and large (a large payload's frame is
    /// unmasked into a buffer of its own on a resuming connection, and the window keeps it
    /// without a copy), replay intact and in order, and release all they took once acknowledged.
    @Test func echoedPayloadsReadTogetherReplayIntact() async throws {
        let yaml = "routes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let (socket, greeting) = try await ResumeTests.resume(host, id: "w3")
            let epoch = try #require(greeting.headers["epoch"])
            let sizes = [100, 1024, 5000, 1023, 20000, 3, 2048, 0, 65535]
            func request(_ n: Int) -> Message {
                Message(headers: [HeaderName.route: "echo", "pos": "\(n)", "n": "\(n)"], payload: ByteBuffer(repeating: UInt8(n % 251), count: sizes[n % sizes.count]))
            }
            let rounds = 4
            let total = rounds * sizes.count
            for round in 0..<rounds {
                // Each round's frames arrive together and overwrite the reader's shared buffer.
                try await socket.send(together: (1...sizes.count).map { request(round * sizes.count + $0) })
                for n in (round * sizes.count + 1)...((round + 1) * sizes.count) {
                    var reply = try await socket.nextMessage()
                    // The host acknowledges our positions alone when no reply follows in time
                    // (200 ms: a loaded machine's full run got one between replies).
                    while reply.headers.route == ResumeHeader.ackRoute { reply = try await socket.nextMessage() }
                    #expect(reply.headers["n"] == "\(n)" && reply.payload == request(n).payload)
                }
            }
            try await socket.close()
            try await socket.waitUntilClosed()

            let (again, resumed) = try await ResumeTests.resume(host, id: "w3", received: 0, epoch: epoch)
            #expect(resumed.headers["replayed"] == "\(total)" && resumed.headers["lost"] == "0")
            for n in 1...total {
                let message = try await again.nextMessage()
                #expect(message.headers["pos"] == "\(n)" && message.headers["n"] == "\(n)")
                #expect(message.payload == request(n).payload, "reply \(n) of \(message.payload.readableBytes) bytes")
            }
            try await again.send(["ack": "\(total)"])
            try await waitUntil { host.client("w3")?.resume?.windowBytes == 0 }
            try await Self.expectEmptied(host, "w3", socket: again)
        }
    }
}

extension ResumeWindowTests {
    /// A large payload that is a slice of a larger buffer is copied into the window (keeping it
    /// would hold the whole buffer) and replays intact.
    @Test func slicesOfALargerBufferReplayIntact() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("w4")!
            let (socket, greeting) = try await ResumeTests.resume(host, id: "w4")
            let epoch = try #require(greeting.headers["epoch"])
            let shared = ByteBuffer(bytes: (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0 / 7) })
            func push(_ n: Int) -> Message {
                numberedPush(n, payload: shared.getSlice(at: n * 1000, length: 1024 + n * 100)!)
            }
            for n in 1...20 {
                host.host.directory.push(push(n), to: id)
                _ = try await socket.nextMessage()
            }
            try await socket.close()
            try await socket.waitUntilClosed()
            let (again, resumed) = try await ResumeTests.resume(host, id: "w4", received: 0, epoch: epoch)
            #expect(resumed.headers["replayed"] == "20")
            for n in 1...20 {
                let message = try await again.nextMessage()
                #expect(message.headers["pos"] == "\(n)" && message.payload == push(n).payload)
            }
        }
    }
}

extension ResumeWindowTests {
    /// The parts of a large message whose payload is alone in its buffer are kept without
    /// copies, and the window's memory holds the buffer until its last part is acknowledged
    /// (releasing the first parts frees nothing). A pushed payload that is a slice of a larger buffer is
    /// alone in its own by then: the id's queue copied it (it would have pinned the larger
    /// one). Both replay intact.
    @Test func thePartsOfALargeMessageAreCountedAsWhatTheyHold() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("w5")!
            let (socket, greeting) = try await ResumeTests.resume(host, id: "w5")
            let epoch = try #require(greeting.headers["epoch"])
            let size = 200_000
            let alone = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 / 3) })
            let larger = ByteBuffer(bytes: (0..<(4 * size)).map { UInt8(truncatingIfNeeded: $0 / 5) })
            for (n, payload) in [(1, alone), (2, larger.getSlice(at: size, length: size)!)] {
                host.host.directory.push(numberedPush(n, payload: payload), to: id)
            }
            let parts = size / WireLimits.maxPayloadBytes + 1
            var received: [Message] = []
            for _ in 1...(2 * parts) { received.append(try await socket.nextMessage()) }
            #expect(received.map { $0.headers["pos"] } == (1...(2 * parts)).map { "\($0)" })
            let window = { @Sendable () throws -> ResumeSnapshot in try #require(host.client("w5")?.resume) }

            #expect(try window().windowBytes >= 2 * size)
            let whole = try window().windowMemoryBytes
            #expect(whole >= 2 * size)
            // All but the last part of the first message: its buffer is still held.
            try await socket.send(["ack": "\(parts - 1)"])
            try await waitUntil { try window().windowMessages == parts + 1 }
            #expect(try window().windowMemoryBytes == whole, "the first message's buffer is held by its last part")
            #expect(try window().windowBytes < size + 2 * WireLimits.maxPayloadBytes, "the bound counts what is left to replay")
            // The first message, and the first part of the second: that part's copy goes.
            try await socket.send(["ack": "\(parts + 1)"])
            try await waitUntil { try window().windowMessages == parts - 1 }
            let second = try window().windowMemoryBytes
            #expect(second >= size && second < whole, "the second message's buffer is held by its last parts")
            try await socket.close()
            try await socket.waitUntilClosed()

            let (again, resumed) = try await ResumeTests.resume(host, id: "w5", received: UInt64(parts + 1), epoch: epoch)
            #expect(resumed.headers["replayed"] == "\(parts - 1)")
            let replayed = try await Self.joinedPayloads(of: parts - 1, from: again)
            #expect(replayed == larger.getSlice(at: size + WireLimits.maxPayloadBytes, length: size - WireLimits.maxPayloadBytes)!)
            try await again.send(["ack": "\(2 * parts)"])
            try await waitUntil { try window().windowBytes == 0 }
            try await Self.expectEmptied(host, "w5", socket: again)
        }
    }
}

extension ResumeWindowTests {
    /// A window smaller than one message keeps the newest message whole (every part, SPEC
    /// §9), and a later message evicts it whole: a replay never starts inside a message. Both
    /// for parts kept as slices of one buffer and parts copied one by one.
    @Test(arguments: [true, false]) func evictionsTakeWholeMessagesAndKeepTheNewestWhole(payloadAlone: Bool) async throws {
        let yaml = "limits:\n  resumeWindowBytes: 65536\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let name = payloadAlone ? "w7" : "w8"
            let id = ClientID(name)!
            let (socket, greeting) = try await ResumeTests.resume(host, id: name)
            let epoch = try #require(greeting.headers["epoch"])
            let size = 200_000
            let bytes = ByteBuffer(bytes: (0..<(4 * size)).map { UInt8(truncatingIfNeeded: $0 / 3) })
            let large = payloadAlone ? ByteBuffer(buffer: bytes.getSlice(at: 0, length: size)!) : bytes.getSlice(at: size, length: size)!
            let parts = size / WireLimits.maxPayloadBytes + 1
            for (n, payload) in [(1, ByteBuffer(repeating: 1, count: 100)), (2, large)] {
                host.host.directory.push(numberedPush(n, payload: payload), to: id)
            }
            for _ in 0...parts { _ = try await socket.nextMessage() }
            try await socket.close()
            try await socket.waitUntilClosed()

            let (again, resumed) = try await ResumeTests.resume(host, id: name, received: 0, epoch: epoch)
            #expect(resumed.headers["lost"] == "1" && resumed.headers["replayed"] == "\(parts)", "the newest message whole: \(resumed.headers)")
            let replayed = try await Self.joinedPayloads(of: parts, from: again)
            #expect(replayed == large)
            // A later message evicts every part of the large one.
            host.host.directory.push(numberedPush(3), to: id)
            _ = try await again.nextMessage()
            try await again.close()
            try await again.waitUntilClosed()
            let (last, final) = try await ResumeTests.resume(host, id: name, received: 1, epoch: epoch)
            #expect(final.headers["lost"] == "\(parts)" && final.headers["replayed"] == "1", "\(final.headers)")
            #expect(try await last.nextMessage().headers["n"] == "3")
        }
    }
}

extension ResumeWindowTests {
    /// The window's bound counts encoded messages (SPEC §9), the budget the memory they hold.
    /// A large message whose payload is alone in a buffer of up to twice its size was counted
    /// at the buffer's capacity: a message of 150 KB took a window of 256 KiB, and the next
    /// push of a few bytes evicted it.
    @Test func aLargeMessageInABiggerBufferTakesTheWindowItsEncodedBytesOnly() async throws {
        let yaml = "limits:\n  resumeWindowBytes: 262144\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("w9")!
            let (socket, greeting) = try await ResumeTests.resume(host, id: "w9")
            let epoch = try #require(greeting.headers["epoch"])
            let size = 150_000
            var large = ByteBuffer()
            large.reserveCapacity(290_000)
            large.writeBytes((0..<size).map { UInt8(truncatingIfNeeded: $0 / 7) })
            host.host.directory.push(numberedPush(1, payload: large), to: id)
            let parts = size / WireLimits.maxPayloadBytes + 1
            for _ in 1...parts { _ = try await socket.nextMessage() }
            let snapshot = try #require(host.client("w9")?.resume)
            #expect(snapshot.windowBytes < size + 1000 && snapshot.windowMemoryBytes > size + 100_000, "the buffer held, not its capacity counted: \(snapshot)")
            host.host.directory.push(numberedPush(2), to: id)
            _ = try await socket.nextMessage()
            try await socket.close()
            try await socket.waitUntilClosed()

            let (again, resumed) = try await ResumeTests.resume(host, id: "w9", received: 0, epoch: epoch)
            #expect(resumed.headers["lost"] == "0" && resumed.headers["replayed"] == "\(parts + 1)", "\(resumed.headers)")
            #expect(try await Self.joinedPayloads(of: parts, from: again) == large)
            #expect(try await again.nextMessage().headers["n"] == "2")
        }
    }
}

extension ResumeWindowTests {
    /// A window of tiny messages is charged the memory it takes, not just their encoded bytes:
    /// each message also takes an entry in a list. Charged by bytes alone, such a window took
    /// six times its charge (an RSS of 24 MB for a full 4 MiB window). Under a 1 MiB budget the
    /// oldest go instead, counted.
    @Test func aWindowOfTinyMessagesIsChargedItsMemory() async throws {
        let yaml = "limits:\n  hostBufferBytes: 1048576\n  resumeWindowBytes: 8388608\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("w9")!
            let (socket, _) = try await ResumeTests.resume(host, id: "w9")
            // In batches the socket's queue takes whole (4,096 messages).
            let batch = 4000
            let total = 5 * batch
            for _ in 0..<5 {
                for _ in 1...batch { host.host.directory.push(Message(headers: [:]), to: id) }
                for _ in 1...batch { _ = try await socket.nextMessage() }
            }
            let window = try #require(host.client("w9")?.resume)
            let used = host.host.directory.budget.usedBytes
            // Whatever the entries' layout, each takes more than its 8-byte position.
            #expect(used >= window.windowBytes + 8 * window.windowMessages, "\(used) budget bytes for \(window)")
            #expect(used >= window.windowMemoryBytes && used <= 1 << 20)
            #expect(window.evicted > 0 && window.windowMessages + window.evicted == total)
        }
    }
}


extension ResumeWindowTests {
    /// A reply made while a replay goes out follows the replay: the requests are read (and
    /// answered) between its batches, and the replies wait in the outbound queue, numbered only
    /// when written, after the last replayed position.
    @Test func repliesMadeDuringAReplayFollowIt() async throws {
        let yaml = "routes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let replayed = 20_000
            let epoch = try await Self.windowOfPushes(replayed, host, id: "reply-replay")
            let (again, resumed) = try await ResumeTests.resume(host, id: "reply-replay", received: 0, epoch: epoch)
            #expect(resumed.headers["replayed"] == "\(replayed)")
            let requests = 3
            try await again.send(together: (1...requests).map { Message(headers: ["route": "echo", "pos": "\($0)", "n": "reply \($0)"]) })
            var numbered: [Message] = []
            while numbered.count < replayed + requests {
                let message = try await again.nextMessage(timeout: .seconds(30))
                if message.headers.route != ResumeHeader.ackRoute { numbered.append(message) }
            }
            #expect(numbered.map { $0.headers["pos"] } == (1...replayed + requests).map { "\($0)" }, "every position once, in order")
            #expect(numbered.prefix(replayed).map { $0.headers["n"] } == (1...replayed).map { "\($0)" }, "the replay first")
            #expect(numbered.suffix(requests).map { $0.headers["n"] } == (1...requests).map { "reply \($0)" }, "then the replies")
            #expect(try #require(host.client("reply-replay")?.resume).clientAcknowledged == UInt64(requests), "each request dispatched once")
            try await again.close()
        }
    }
}

extension ResumeWindowTests {
    /// How many messages `id`'s replay has sent once that stopped growing for a second: the
    /// reader's buffers are full (or it is all out).
    static func replayStandsStill(_ host: TestHost, id: String) async throws -> Int {
        var replayed = 0
        var before = -1
        let deadline = ContinuousClock.now + .seconds(60)
        while replayed == 0 || replayed != before {
            guard ContinuousClock.now < deadline else { throw TestClientError.timedOut }
            before = replayed
            try await Task.sleep(for: .seconds(1))
            replayed = host.client(id)?.resume?.replayed ?? 0
        }
        return replayed
    }

    /// A replay goes out as fast as the socket takes it, not faster: to a client that stopped
    /// reading it stops when the channel is full and goes on when the client reads. Written
    /// regardless, all 24,000 messages (24 MB) went into the channel at once, the window held a
    /// second time outside the budget.
    @Test func aReplayWaitsForTheSocketToTakeMore() async throws {
        let yaml = "limits:\n  hostBufferBytes: 67108864\n  resumeWindowBytes: 33554432\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let total = 24_000
            let epoch = try await Self.windowOfPushes(total, host, id: "slow-reader") { patternedBytes($0, count: 1000) }
            let path = host.path(client: "slow-reader") + "&resume=0&epoch=\(epoch)"
            let socket = try await TestWebSocketClient.connect(port: host.port, path: path, receiveBufferBytes: 65536)
            try await socket.pauseReading()
            let replayed = try await Self.replayStandsStill(host, id: "slow-reader")
            print("a replay of \(total) messages of 1 KB to a client that does not read stopped after \(replayed)")
            #expect(replayed < total / 2, "\(replayed) of \(total) written to a socket nobody read")
            try await socket.resumeReading()
            var positions: [String?] = []
            while positions.count < total {
                let message = try await socket.nextMessage(timeout: .seconds(30))
                if message.headers.route == "test.push" {
                    positions.append(message.headers["pos"])
                    #expect(message.payload == patternedBytes(positions.count, count: 1000))
                }
            }
            #expect(positions == (1...total).map { "\($0)" }, "every position once, in order")
            #expect(host.client("slow-reader")?.resume?.replayed == total)
            try await socket.close()
        }
    }
}

extension ResumeWindowTests {
    /// A replay read from the window a batch at a time while the client acknowledges what it
    /// got (the oldest leave the window under the replay's feet) is intact: small messages,
    /// payloads kept apart from the log, and messages split into parts kept whole.
    @Test func aReplayAcknowledgedAsItGoesIsIntact() async throws {
        let yaml = "limits:\n  hostBufferBytes: 67108864\n  resumeWindowBytes: 33554432\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("acked-replay")!
            let sizes = [10, 1000, 20_000, 70_000]
            func push(_ n: Int) -> Message { numberedPush(n, payload: patternedBytes(n, count: sizes[n % sizes.count])) }
            let total = 600
            let (socket, greeting) = try await ResumeTests.resume(host, id: "acked-replay")
            let epoch = try #require(greeting.headers["epoch"])
            for run in stride(from: 1, through: total, by: 50) {
                for n in run..<run + 50 { host.host.directory.push(push(n), to: id) }
                for _ in 0..<50 { _ = try await socket.nextJoinedMessage() }
            }
            try await socket.close()
            try await socket.waitUntilClosed()
            let kept = try #require(host.client("acked-replay")?.resume)
            #expect(kept.windowMessages > total, "the large ones kept in parts")

            let (again, resumed) = try await ResumeTests.resume(host, id: "acked-replay", received: 0, epoch: epoch)
            #expect(resumed.headers["replayed"] == "\(kept.windowMessages)")
            for n in 1...total {
                let message = try await again.nextJoinedMessage()
                #expect(message.headers["n"] == "\(n)" && message.payload == push(n).payload, "message \(n)")
                if n % 7 == 0 { try await again.send(["ack": try #require(message.headers["pos"])]) }
            }
            try await again.send(["ack": "\(kept.sent)"])
            try await waitUntil { host.client("acked-replay")?.resume?.windowBytes == 0 }
            #expect(host.client("acked-replay")?.resume?.replayed == kept.windowMessages)
            try await again.close()
        }
    }

    /// A client that acknowledges positions the replay has not sent again yet ends the replay
    /// there (they left the window): what it had sent is in order, and the next live message
    /// follows with the next position.
    @Test func anAcknowledgementAheadOfTheReplayEndsIt() async throws {
        let yaml = "limits:\n  resumeWindowBytes: 67108864\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let total = 20_000
            // 20 MB in all: more than the kernel's buffers take while the reader waits (600 KB
            // of small pushes did, and a loaded run wrote the whole replay before the host read
            // the acknowledgement).
            let epoch = try await Self.windowOfPushes(total, host, id: "ack-ahead") { ByteBuffer(repeating: UInt8($0 % 251), count: 1_000) }
            // A reader that takes nothing until the acknowledgement is in, so the replay can't
            // be over before it: read at once, a loaded run replayed all 20,000 first.
            let again = try await TestWebSocketClient.connect(
                port: host.port, path: host.path(client: "ack-ahead") + "&resume=0&epoch=\(epoch)", receiveBufferBytes: 16 << 10, paused: true)
            try await again.send(["ack": "\(total)"])
            try await waitUntil { host.client("ack-ahead")?.resume?.acknowledged == UInt64(total) }
            host.host.directory.push(numberedPush(total + 1), to: ClientID("ack-ahead")!)
            try await again.resumeReading()
            #expect(try await again.nextMessage().headers.route == "conduit.resume")
            var positions: [Int] = []
            while positions.last != total + 1 {
                let message = try await again.nextMessage(timeout: .seconds(30))
                guard message.headers.route == "test.push" else { continue }
                positions.append(try #require(Int(message.headers["pos"] ?? "")))
                #expect(message.headers["n"] == message.headers["pos"])
            }
            let replayed = try #require(host.client("ack-ahead")?.resume?.replayed)
            print("a replay of \(total) acknowledged at once stopped after \(replayed)")
            #expect(replayed < total, "the acknowledgement ended the replay")
            #expect(positions == Array(1...replayed) + [total + 1])
            try await again.close()
        }
    }
}

extension ResumeWindowTests {
    /// A client may acknowledge positions a replay has not sent again (it has them from its
    /// events stream). When they are the rest of a message whose parts the replay had begun,
    /// the message can't be finished: the old code sent the next message after a part with
    /// `more`, which the client joined to it, and kept its own acknowledgements back (owed
    /// until the open message ended) for the rest of the connection. The socket now closes, and
    /// the next one resumes past the message.
    @Test func anAcknowledgementAheadOfAReplayInsideAMessageEndsTheSocket() async throws {
        let yaml = "limits:\n  hostBufferBytes: 268435456\n  resumeWindowBytes: 67108864\n  outboundQueueBytes: 67108864\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("inside")!
            let parts = 400
            let (first, greeting) = try await ResumeTests.resume(host, id: "inside")
            let epoch = try #require(greeting.headers["epoch"])
            host.host.directory.push(numberedPush(1, payload: patternedBytes(1, count: parts * WireLimits.maxPayloadBytes)), to: id)
            host.host.directory.push(numberedPush(2), to: id)
            _ = try await first.nextJoinedMessage(timeout: .seconds(30))
            #expect(try await first.nextMessage(timeout: .seconds(30)).headers["pos"] == "\(parts + 1)")
            try await first.close()
            try await first.waitUntilClosed()

            let path = host.path(client: "inside") + "&resume=0&epoch=\(epoch)"
            let socket = try await TestWebSocketClient.connect(port: host.port, path: path, receiveBufferBytes: 65536, paused: true)
            let replayed = try await Self.replayStandsStill(host, id: "inside")
            print("a replay of a message of \(parts) parts to a client that does not read stopped after \(replayed)")
            try #require(replayed < parts, "the replay stopped inside the message")
            try await socket.send(["ack": "\(parts + 1)"])
            try await waitUntil { host.client("inside")?.resume?.acknowledged == UInt64(parts + 1) }
            host.host.directory.push(numberedPush(3), to: id)
            try await socket.resumeReading()
            var partsRead = 0
            var closed: (code: UInt16, reason: String)?
            do {
                while true {
                    let message = try await socket.nextMessage(timeout: .seconds(30))
                    guard message.headers.route == "test.push" else { continue }
                    guard message.headers["n"] == "1", message.headers.hasMore else {
                        Issue.record("after \(partsRead) parts of message 1 with more to come: \(message.headers)")
                        break
                    }
                    partsRead += 1
                }
            } catch TestClientError.closedByServer(let code, let reason) {
                closed = (code, reason)
            }
            // The host's count once the socket is closed: a loaded host can look still for the
            // sampling's second and then send more.
            #expect(partsRead == host.client("inside")?.resume?.replayed)
            #expect(closed?.code == 1000 && closed?.reason.contains("acknowledged") == true, "\(String(describing: closed))")

            let (again, resumed) = try await ResumeTests.resume(host, id: "inside", received: UInt64(parts + 1), epoch: epoch)
            #expect(resumed.headers["replayed"] == "0" && resumed.headers["lost"] == "0")
            let next = try await again.nextMessage(route: "test.push", timeout: .seconds(30))
            #expect(next.headers["n"] == "3" && next.headers["pos"] == "\(parts + 2)")
            try await again.close()
        }
    }

    /// The events stream's replay goes out as fast as the stream is read, as the socket's does:
    /// written in one go, all 24,000 messages (24 MB) went into the channel of a reader that had
    /// stopped after the greeting.
    @Test func aStreamsReplayWaitsForTheStreamToTakeMore() async throws {
        let yaml = "limits:\n  hostBufferBytes: 67108864\n  resumeWindowBytes: 33554432\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let total = 24_000
            let epoch = try await Self.windowOfPushes(total, host, id: "slow-stream") { patternedBytes($0, count: 1000) }
            let reader = StalledEventsReader(host, id: "slow-stream", query: [("resume", "0"), ("epoch", epoch)], stallAfter: 1)
            let replayed = try await Self.replayStandsStill(host, id: "slow-stream")
            print("a stream's replay of \(total) messages of 1 KB to a reader that stopped stopped after \(replayed)")
            #expect(replayed < total / 2, "\(replayed) of \(total) written to a stream nobody read")
            reader.resume()
            try await waitUntil(timeout: .seconds(60)) { reader.count == total + 1 }
            let replay = reader.messages.dropFirst()
            #expect(replay.map { $0.headers["pos"] } == (1...total).map { "\($0)" }, "every position once, in order")
            #expect(replay.allSatisfy { $0.payload == patternedBytes(Int($0.headers["n"] ?? "") ?? 0, count: 1000) })
            #expect(host.client("slow-stream")?.resume?.replayed == total)
            reader.task.cancel()
        }
    }
}
