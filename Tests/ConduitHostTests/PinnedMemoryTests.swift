import ConduitClient
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// SPEC §3: every buffer is bounded in bytes. A message's payload is a slice of the buffer its
/// whole read was unmasked into; what the host kept past the read (a chunk, a reply waiting for
/// a slow reader, the headers of the last message) kept that buffer alive, while the budget
/// counted only the message's own bytes: a 3-byte empty chunk after a 1 MB message pinned the
/// megabyte. What is kept now holds its own bytes only. Measured as the resident memory of a
/// `conduit serve` of its own (nothing else allocates there), with generous bounds: the old code
/// grew by about 24 MB in each (25 messages or connections), this by 1–4.
@Suite("Memory a kept message pins", .serialized, .timeLimit(.minutes(3)))
struct PinnedMemoryTests {
    /// About 915 KB of `cancel` headers and no route: ignored (an unknown token), no reply.
    static let large = Message(headers: Headers((0..<15).map { _ in ("cancel", String(repeating: "c", count: 61_000)) }))

    @Test func emptyChunksAfterLargeMessagesPinNothing() async throws {
        let host = try await ServedHost.start()
        let client = try await host.connect("chunker")
        try await ServedHost.sync(client, token: "warm")
        let before = try host.residentBytes()
        for _ in 0..<25 { try await client.send(together: [Self.large, Message(headers: [:])]) }
        try await ServedHost.sync(client, token: "read")
        let grown = try host.residentBytes() - before
        #expect(grown < 12 << 20, "the host grew by \(grown >> 20) MiB for 25 empty chunks")
        try await client.close()
        await host.stop()
    }

    @Test func repliesWaitingForASlowReaderPinNothing() async throws {
        let host = try await ServedHost.start()
        let slow = try await host.connect("slow-pinned", receiveBufferBytes: 4096)
        try await slow.pauseReading()
        // Until the socket can't take more: replies wait in its queue from then on.
        for n in 0..<200 { try await slow.send(["route": "echo", "token": "fill-\(n)"], payload: [UInt8](repeating: 1, count: 60_000)) }
        try await waitUntil { try await host.outboundQueued("slow-pinned") > 0 }
        let queued = try await host.outboundQueued("slow-pinned")
        let before = try host.residentBytes()
        for n in 0..<25 {
            try await slow.send(together: [Self.large, Message(headers: ["route": "echo", "token": "tiny-\(n)"], payload: ByteBuffer(string: "x"))])
        }
        try await waitUntil { try await host.outboundQueued("slow-pinned") >= queued + 20 }
        let grown = try host.residentBytes() - before
        #expect(grown < 12 << 20, "the host grew by \(grown >> 20) MiB for 25 queued 1-byte echoes")
        try await slow.close()
        await host.stop()
    }

    @Test func anIdleConnectionKeepsNoLargeHeaders() async throws {
        let host = try await ServedHost.start()
        var clients: [TestWebSocketClient] = []
        for n in 0..<25 {
            let client = try await host.connect("idle-\(n)")
            try await ServedHost.sync(client, token: "warm")
            clients.append(client)
        }
        // A digest: answered (small), so the host is known to have read it, the last it read.
        let large = Message(headers: Headers([("digest", "1"), ("token", "large")] + (0..<14).map { _ in ("x-pad", String(repeating: "p", count: 61_000)) }))
        let before = try host.residentBytes()
        for client in clients { try await client.send(large) }
        for client in clients { _ = try await client.nextMessage(where: { $0.headers["token"] == "large" }) }
        let grown = try host.residentBytes() - before
        #expect(grown < 12 << 20, "the host grew by \(grown >> 20) MiB for 25 idle connections")
        for client in clients { try await client.close() }
        await host.stop()
    }

    /// An IPC request with a token kept its connection's handler after the connection closed
    /// (the answer kept for a cancel and the handler held each other): about 70 KB for each
    /// with a 200 KB body, 14 MB for these 200 (the clients' fallback sends tokens).
    @Test func ipcConnectionsWhoseRequestsCarriedATokenLeaveNothingBehind() async throws {
        let host = try await ServedHost.start()
        let body = ByteBuffer(repeating: 0x7A, count: 200_000)
        for n in 0..<20 { _ = try await host.ipc.request(.POST, "/echo?token=warm-\(n)", body: body) }
        let before = try host.residentBytes()
        for n in 0..<200 {
            let answer = try await host.ipc.request(.POST, "/echo?token=t-\(n)", body: body)
            #expect(answer.status == .ok && answer.body.readableBytes == body.readableBytes)
        }
        let grown = try host.residentBytes() - before
        #expect(grown < 5 << 20, "the host grew by \(grown >> 20) MiB for 200 IPC requests")
        await host.stop()
    }
}

/// `conduit serve` with the echo route, as a child process: its memory is its own.
private struct ServedHost {
    static let key = "pinned-memory-key"
    let process: ConduitProcess
    let port: Int
    let ipc: IPCClient

    static func start() async throws -> ServedHost {
        let config = NSTemporaryDirectory() + "conduit-pinned-\(UUID().uuidString).yaml"
        try "routes:\n  - route: echo\n    handler: echo\n".write(toFile: config, atomically: true, encoding: .utf8)
        let process = try ConduitProcess(["serve", "--config", config], environment: [
            "CONDUIT_SHARED_KEY": key, "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-pinned-\(UUID().uuidString).json",
        ])
        let announce = try JSONSerialization.jsonObject(with: Data(try await process.firstLine().utf8)) as! [String: Any]
        return ServedHost(
            process: process, port: try #require(announce["port"] as? Int),
            ipc: IPCClient(port: try #require(announce["ipcPort"] as? Int), key: key))
    }

    func connect(_ id: String, receiveBufferBytes: Int? = nil) async throws -> TestWebSocketClient {
        try await TestWebSocketClient.connect(port: port, path: "/\(id)/0?key=\(Self.key)", receiveBufferBytes: receiveBufferBytes)
    }

    /// Waits until the host has read everything sent before: a digest is answered in order.
    static func sync(_ client: TestWebSocketClient, token: String) async throws {
        try await client.send(["digest": "1", "token": token])
        _ = try await client.nextMessage(where: { $0.headers["token"] == token })
    }

    func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/\(process.process.processIdentifier)/statm", encoding: .utf8)
        return (Int(statm.split(separator: " ")[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The id's messages waiting for its socket, as diagnostics show them.
    func outboundQueued(_ id: String) async throws -> Int {
        let response = try await ipc.request(.POST, "/internal.conduit.diagnostics?id=\(id)")
        let diagnostics = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as! [String: Any]
        let clients = (diagnostics["data"] as? [String: Any])?["clients"] as? [[String: Any]]
        return clients?.first?["outboundQueued"] as? Int ?? 0
    }

    func stop() async {
        process.signal(SIGTERM)
        _ = await process.exit()
    }
}
