import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing

/// `GET /internal.conduit.events?id=`: a client whose socket is down reads its pushes over IPC.
@Suite("IPC fallback stream", .serialized, .timeLimit(.minutes(1)))
struct FallbackStreamTests {
    @Test func streamDeliversBufferedAndLivePushesThenASocketTakesOver() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("9")!
            let socket = try await host.connect(client: "9")
            try await socket.close()
            try await socket.waitUntilClosed()
            try await waitUntil { host.client("9")?.connected == false }
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: id) }

            let received = NIOLockedValueBox<[Message]>([])
            let reader = Task {
                try await host.ipc().events(for: "9") { message in
                    received.withLockedValue { $0.append(message) }
                    return true
                }
            }
            try await waitUntil { received.withLockedValue { $0.count } == 3 }
            #expect(host.client("9")?.streaming == true)
            for n in 4...6 { host.host.directory.push(numberedPush(n), to: id) }
            host.host.directory.push(numberedPush(7, payload: ByteBuffer(repeating: 7, count: 100_000)), to: id)
            try await waitUntil { received.withLockedValue { $0.count } == 8 }
            let messages = received.withLockedValue { $0 }
            #expect(messages.prefix(6).map { $0.headers["n"] } == (1...6).map { "\($0)" })
            #expect(messages[6].headers.hasMore && messages[6].payload.readableBytes == WireLimits.maxPayloadBytes)
            #expect(!messages[7].headers.hasMore && messages[7].payload.readableBytes == 100_000 - WireLimits.maxPayloadBytes)
            #expect(host.client("9")?.buffered == 0)

            // A socket for the id takes over: the stream ends, later pushes go to the socket only.
            let again = try await host.connect(client: "9")
            try await reader.value
            host.host.directory.push(numberedPush(8), to: id)
            #expect(try await again.nextMessage().headers["n"] == "8")
            #expect(received.withLockedValue { $0.count } == 8, "nothing twice")
            await #expect(throws: (any Error).self, "refused while the socket is open") {
                try await host.ipc().events(for: "9") { _ in true }
            }
            try await again.close()
        }
    }

    @Test func aSocketTakingOverFromAStalledStreamGetsExactlyTheRest() async throws {
        // 3,000 pushes of 8 KiB: the id's buffer must hold them all (the default is 8 MiB).
        let yaml = "limits:\n  pushBufferBytes: 33554432\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let id = ClientID("11")!
            let total = 3000
            // Takes one message, then stops reading: the host's writes back up, so most pushes
            // are still in the directory when the socket attaches.
            let reader = StalledEventsReader(host, id: "11", stallAfter: 1)
            try await waitUntil { host.client("11")?.streaming == true }
            for n in 1...total {
                host.host.directory.push(numberedPush(n, payload: ByteBuffer(repeating: UInt8(truncatingIfNeeded: n), count: 8192)), to: id)
            }
            try await waitUntil { reader.count == 1 }
            let socket = try await host.connect(client: "11")
            reader.resume()
            try await reader.task.value
            let fromStream = reader.messages.map { Int($0.headers["n"] ?? "") ?? -1 }
            #expect(fromStream == Array(1...fromStream.count), "the stream's share is a prefix, in order")
            #expect(fromStream.count < total, "the stalled stream did not get everything")

            var fromSocket: [Int] = []
            for _ in fromStream.count..<total {
                let message = try await socket.nextMessage()
                #expect(message.payload.readableBytes == 8192)
                fromSocket.append(Int(message.headers["n"] ?? "") ?? -1)
            }
            #expect(fromSocket == Array((fromStream.count + 1)...total), "the socket gets exactly the rest, in order")
            host.host.directory.push(numberedPush(total + 1), to: id)
            #expect(try await socket.nextMessage().headers["n"] == "\(total + 1)", "nothing twice: the next message is the next push")
            print("hand-over: \(fromStream.count) pushes over the stream, \(fromSocket.count) over the socket")
            try await socket.close()
        }
    }

    /// SPEC §9's fine print: an id with an open socket gets its pushes there, and its events
    /// stream is refused with 409, resuming or not, leaving the id as it was.
    @Test func anIdWithAnOpenSocketHasNoEventsStream() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let socket = try await host.connect(client: "14")
            for query in ["id=14", "id=14&resume=0"] {
                let refused = try await host.ipc().request(.GET, "/internal.conduit.events?\(query)")
                #expect(refused.status == .conflict, "\(query): \(refused.status)")
                #expect(try refused.decode(ErrorEnvelope.self).err.message.contains("open socket"))
            }
            #expect(host.client("14")?.streaming == false && host.client("14")?.resume == nil)
            host.host.directory.push(numberedPush(1), to: ClientID("14")!)
            let push = try await socket.nextMessage()
            #expect(push.headers["n"] == "1" && push.headers["pos"] == nil)
            try await socket.close()
        }
    }

    /// The stream's connection is closed when the stream ends, so its head says so: a client
    /// that pools keep-alive connections (Node's fetch) once sent its next request on it just as
    /// the host closed it, and that request failed ("other side closed").
    @Test func theStreamsHeadSaysTheConnectionClosesAfterIt() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let raw = try await RawTCPClient.connect(port: host.ipcPort)
            try await raw.send("GET /internal.conduit.events?id=13 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\n\r\n")
            try await waitUntil { host.client("13")?.streaming == true }
            let socket = try await host.connect(client: "13")
            let response = String(buffer: try await raw.readUntilClosed())
            let head = response.components(separatedBy: "\r\n\r\n")[0].lowercased()
            #expect(head.hasPrefix("http/1.1 200"), "\(head)")
            #expect(head.contains("\r\nconnection: close"), "\(head)")
            try await socket.close()
        }
    }

    /// A stream whose reader went away while it had nothing to send stayed the id's receiver:
    /// the half-closed connection (the caller's end) was kept open for the stream, so the id
    /// never expired, its place and the stream's were never given back (seven such callers
    /// left every later stream 503), and the next push was written into the dead connection
    /// and lost, uncounted. The caller's end closes the stream now; the push waits for the id.
    @Test func aStreamWhoseReaderLeftEndsAndThePushWaitsForTheId() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let raw = try await RawTCPClient.connect(port: host.ipcPort)
            try await raw.send("GET /internal.conduit.events?id=left HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\n\r\n")
            try await waitUntil { host.client("left")?.streaming == true }
            try await raw.close()
            try await waitUntil { host.client("left")?.streaming == false }
            let pushed = host.host.directory.push(Message(headers: ["route": "after"]), to: ClientID("left")!, delivery: .reliable)
            #expect(pushed == .buffered)
            let socket = try await host.connect(client: "left")
            #expect(try await socket.nextMessage().headers["route"] == "after")
            try await socket.close()
        }
    }

    /// A push the stream took was given back to the budget as it was taken, before the stream's
    /// connection had written it: a stream that did not read held a message of up to 16 MiB in
    /// the channel, outside the budget (256 such streams, 4 GiB against a 256 MiB budget). Its
    /// bytes stay charged until the connection has written them.
    @Test func aPushTheStreamTookStaysChargedUntilWritten() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let budget = host.host.directory.budget
            let size = 12 << 20
            #expect(host.host.directory.push(Message(headers: ["route": "big"], payload: ByteBuffer(repeating: 5, count: size)), to: ClientID("unread")!, delivery: .reliable) == .buffered)
            let raw = try await RawTCPClient.connect(port: host.ipcPort, receiveBufferBytes: 4096)
            try await raw.pauseReading()
            try await raw.send("GET /internal.conduit.events?id=unread HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\n\r\n")
            try await waitUntil { host.client("unread")?.streaming == true && host.client("unread")?.buffered == 0 }
            #expect(budget.usedBytes >= size, "\(budget.usedBytes) bytes charged while the stream holds the push unwritten")
            try await raw.close()
            try await waitUntil { budget.usedBytes == 0 }
        }
    }
}
