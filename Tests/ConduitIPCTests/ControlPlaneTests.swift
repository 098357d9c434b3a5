import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The control routes over a real IPC connection, against a real host and real WebSockets.
@Suite("IPC control plane", .serialized, .timeLimit(.minutes(3)))
struct ControlPlaneTests {
    @Test func stopClosesSocketsAndStartServesBufferedPushesInOrder() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let ipc = host.ipc()
            let before = try await ipc.request(.GET, "/internal.conduit.status").decode(DataEnvelope<StatusBody>.self).data
            #expect(before == StatusBody(port: host.port, isActive: true, sharedKey: host.sharedKey))

            let client = try await host.connect(client: "7")
            _ = try await client.request(Message(headers: ["route": "echo", "token": "1"]))
            let stopped = try await ipc.request(.POST, "/internal.conduit.stop")
            #expect(stopped.status == .ok)
            #expect(try stopped.decode(DataEnvelope<StatusBody>.self).data == StatusBody(port: nil, isActive: false, sharedKey: host.sharedKey))
            #expect(try await client.nextClose().code == 1001)
            try await client.waitUntilClosed()
            #expect(try RuntimeFile.read(from: host.endpoints.runtimeFile).port == nil)
            await #expect(throws: (any Error).self, "nothing listens on the old port") {
                try await RawTCPClient.connect(port: host.port)
            }

            for n in 1...5 { host.host.directory.push(numberedPush(n), to: ClientID("7")!) }
            #expect(host.client("7")?.buffered == 5)
            let diagnostics = try await ipc.request(.GET, "/internal.conduit.diagnostics").decode(DataEnvelope<DiagnosticsBody>.self).data
            #expect(diagnostics.isActive == false)
            #expect(diagnostics.handles.count == 0)
            #expect(diagnostics.clients.first { $0.id == "7" }?.buffered == 5)
            #expect(diagnostics.routes.first { $0.route == "echo" }?.stats.requests == 1)

            let started = try await ipc.request(.POST, "/internal.conduit.start").decode(DataEnvelope<StatusBody>.self).data
            let newPort = try #require(started.port)
            #expect(started.isActive)
            #expect(try RuntimeFile.read(from: host.endpoints.runtimeFile).port == newPort)
            let status = try await ipc.request(.GET, "/internal.conduit.status").decode(DataEnvelope<StatusBody>.self).data
            #expect(status.port == newPort)

            let again = try await TestWebSocketClient.connect(port: newPort, path: host.path(client: "7"))
            for n in 1...5 {
                let message = try await again.nextMessage()
                #expect(message.headers["n"] == "\(n)")
                #expect(String(buffer: message.payload) == "push \(n)")
            }
            #expect(host.client("7")?.buffered == 0)
            let handles = try await ipc.request(.GET, "/internal.conduit.diagnostics").decode(DataEnvelope<DiagnosticsBody>.self).data.handles
            #expect(handles.ids == ["7"])
            try await again.close()
        }
    }

    /// A start whose configured port another process took meanwhile was answered 500 with a
    /// log reference: the listener's error, named with its address, was not the kind the route
    /// turned into 503. It is 503 "can't listen", with the address, and a later start works.
    @Test func aStartOnAPortTakenMeanwhileIsUnavailableNotInternal() async throws {
        let free = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(free.localAddress?.port)
        try await free.close()
        let yaml = "server:\n  port: \(port)\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            let ipc = host.ipc()
            #expect(try await ipc.request(.POST, "/internal.conduit.stop").status == .ok)
            let squatter = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: port).get()
            let refused = try await ipc.request(.POST, "/internal.conduit.start")
            #expect(refused.status == .serviceUnavailable, "\(refused.status) \(String(buffer: refused.body))")
            #expect(String(buffer: refused.body).contains("can't listen") && String(buffer: refused.body).contains("\(port)"), "\(String(buffer: refused.body))")
            try await squatter.close()
            #expect(try await ipc.request(.POST, "/internal.conduit.start").status == .ok)
        }
    }

    @Test func setSharedKeyRotatesForNewHandshakesOnly() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let oldKey = host.sharedKey
            let open = try await host.connect(client: "1")
            let tooShort = try await host.ipc().request(.POST, "/internal.conduit.setSharedKey?sharedKey=short")
            #expect(tooShort.status == .badRequest)
            #expect(try tooShort.decode(ErrorEnvelope.self).err.type == "BadRequestError")

            let newKey = "rotated-key-0001"
            let rotated = try await host.ipc().request(.POST, "/internal.conduit.setSharedKey", body: ByteBuffer(string: #"{"sharedKey":"\#(newKey)"}"#))
            #expect(try rotated.decode(DataEnvelope<StatusBody>.self).data.sharedKey == newKey)
            #expect(try RuntimeFile.read(from: host.endpoints.runtimeFile).sharedKey == newKey)

            #expect(try await RawTCPClient.handshakeStatus(port: host.port, path: host.path(client: "2", key: oldKey)) == 403)
            #expect(try await RawTCPClient.handshakeStatus(port: host.port, path: host.path(client: "2", key: newKey)) == 101)
            #expect(try await host.ipc(key: oldKey).request(.GET, "/internal.conduit.status").status == .forbidden)
            let key = try await host.ipc(key: newKey).request(.GET, "/internal.conduit.getSharedKey").decode(DataEnvelope<[String: String]>.self).data
            #expect(key == ["sharedKey": newKey])

            let reply = try await open.request(Message(headers: ["route": "echo", "token": "still-open"]))
            #expect(reply.headers["token"] == "still-open")
            try await open.close()
        }
    }

    @Test func everyRequestWithoutTheRightKeyIsRefused() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let targets = [
                "/", "/conduit.js", "/metrics", "/echo?token=1", "/internal.conduit.status", "/internal.conduit.stop",
                "/internal.conduit.start", "/internal.conduit.getSharedKey", "/internal.conduit.setSharedKey?sharedKey=abcdefghijk",
                "/internal.conduit.diagnostics", "/internal.conduit.reload", "/internal.conduit.events?id=1",
            ]
            for target in targets {
                for method in [HTTPMethod.GET, .POST, .PUT] {
                    let missing = try await host.ipcWithoutKey().request(method, target)
                    #expect(missing.status == .unauthorized, "\(method) \(target)")
                    #expect(try missing.decode(ErrorEnvelope.self).err.type == "ForbiddenError")
                    let wrong = try await host.ipc(key: "not-the-key").request(method, target)
                    #expect(wrong.status == .forbidden, "\(method) \(target)")
                    let wrongInQuery = try await host.ipcWithoutKey().request(method, target + (target.contains("?") ? "&" : "?") + "key=nope-nope")
                    #expect(wrongInQuery.status == .forbidden, "\(method) \(target)")
                }
            }
            let status = try await host.ipc().request(.GET, "/internal.conduit.status")
            #expect(try status.decode(DataEnvelope<StatusBody>.self).data.isActive, "nothing above changed the host")
            #expect(try await host.ipcWithoutKey().request(.GET, "/internal.conduit.status?key=\(host.sharedKey)").status == .ok)
        }
    }

    @Test func anOversizedOrMalformedKeyIsRefusedAndTheOldKeyStays() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            // Over 256 bytes, within a control route's 4 KiB body (a larger body: ControlCallLimitTests).
            let huge = String(repeating: "k", count: 300)
            let refused = try await host.ipc().request(
                .POST, "/internal.conduit.setSharedKey", body: ByteBuffer(string: #"{"sharedKey":"\#(huge)"}"#))
            #expect(refused.status == .badRequest)
            #expect(try refused.decode(ErrorEnvelope.self).err.message.contains("256"))
            let spaced = try await host.ipc().request(.POST, "/internal.conduit.setSharedKey?sharedKey=with%20a%20space")
            #expect(spaced.status == .badRequest)
            // Nothing changed: the old key still opens IPC and sockets.
            #expect(try await host.ipc().request(.GET, "/internal.conduit.status").status == .ok)
            let client = try await host.connect(client: "after-bad-keys")
            try await client.close()
        }
    }

    @Test func internalRoutesStayRefusedOverTheSocket() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let client = try await host.connect()
            for route in ["internal.conduit.status", "internal.conduit.stop", "internal.conduit.events", "internal.other"] {
                let reply = try await client.request(Message(headers: ["route": route, "token": "t"]))
                #expect(reply.headers["error"] == "NotFoundError", "\(route)")
                #expect(reply.headers["token"] == "t")
            }
            let status = try await host.ipc().request(.GET, "/internal.conduit.status").decode(DataEnvelope<StatusBody>.self).data
            #expect(status.isActive)
            try await client.close()
        }
    }

    @Test func reloadAndUnknownControlRoutes() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let reloaded = try await host.ipc().request(.POST, "/internal.conduit.reload")
            #expect(reloaded.status == .ok, "\(reloaded.text)")
            #expect(reloaded.text == #"{"data":{"reloaded":true,"settingsNotApplied":[]}}"#)
            let unknown = try await host.ipc().request(.GET, "/internal.conduit.nope")
            #expect(unknown.status == .notFound)
            #expect(try unknown.decode(ErrorEnvelope.self).err.type == "NotFoundError")
            #expect(try await host.ipc().request(.GET, "/internal.other").status == .notFound)
            let put = try await host.ipc().request(.PUT, "/internal.conduit.status")
            #expect(put.status == .methodNotAllowed)
            #expect(put.headers["allow"] == ["GET, POST"], "RFC 9110 §15.5.6: a 405 says which methods are allowed")
        }
    }

    /// A reload applies the route table; the settings are the process's. An operator who edited
    /// a limit and reloaded was answered `reloaded: true` and nothing else (the log said "route
    /// table reloaded"): the changed settings are named now, in the answer and the log.
    @Test func aReloadNamesTheSettingsItDoesNotApply() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let yaml = "server:\n  port: 1\nlimits:\n  maxMessageBytes: 2048\n  outboundPolicy: close\nroutes:\n  - route: echo\n    handler: echo\n"
            try yaml.write(toFile: host.configurationFile, atomically: true, encoding: .utf8)
            let reloaded = try await host.ipc().request(.POST, "/internal.conduit.reload")
            #expect(reloaded.status == .ok, "\(reloaded.text)")
            let body = try reloaded.decode(DataEnvelope<ReloadBody>.self).data
            #expect(body.settingsNotApplied == ["server.port", "limits.maxMessageBytes", "limits.outboundPolicy"])
            let client = try await host.connect()
            let echoed = try await client.request(Message(headers: ["route": "echo", "token": "big"], payload: ByteBuffer(repeating: 7, count: 4096)))
            #expect(echoed.payload.readableBytes == 4096, "the running settings stay: 1 MiB messages, not 2 KiB")
        }
    }

    private struct ReloadBody: Decodable {
        let reloaded: Bool
        let settingsNotApplied: [String]
    }

    /// Diagnostics listed every id the host held: 65,536 of them (the default bound) made an
    /// answer of 30 MB, built whole for every call (the status page polls it). They list the
    /// first 1,000 by name, or `clients=N`, or the one `id=` names; `handles` and `places`
    /// count them all.
    @Test func diagnosticsListTheFirstIdsAndCountThemAll() async throws {
        let yaml = "limits:\n  maxClients: 1100\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            for index in 0..<1050 {
                host.host.directory.push(Message(headers: ["route": "p"]), to: ClientID("away-\(1000 + index)")!, delivery: .reliable)
            }
            let socket = try await host.connect(client: "open")
            let all = try await host.ipc().request(.GET, "/internal.conduit.diagnostics").decode(DataEnvelope<DiagnosticsBody>.self).data
            #expect(all.clients.count == 1000 && all.clients.first?.id == "away-1000" && all.clients.last?.id == "away-1999")
            #expect(all.handles.ids == ["open"] && all.places.held == 1051)
            let two = try await host.ipc().request(.GET, "/internal.conduit.diagnostics?clients=2").decode(DataEnvelope<DiagnosticsBody>.self).data
            #expect(two.clients.map(\.id) == ["away-1000", "away-1001"])
            #expect(try await host.ipc().request(.GET, "/internal.conduit.diagnostics?clients=-1").status == .badRequest)
            let one = try await host.ipc().request(.GET, "/internal.conduit.diagnostics?id=away-2049").decode(DataEnvelope<DiagnosticsBody>.self).data
            #expect(one.clients.map(\.id) == ["away-2049"] && one.clients.first?.buffered == 1, "an id past the first 1,000, by name")
            let none = try await host.ipc().request(.GET, "/internal.conduit.diagnostics?id=not-held").decode(DataEnvelope<DiagnosticsBody>.self).data
            #expect(none.clients.isEmpty)
            let badID = try await host.ipc().request(.GET, "/internal.conduit.diagnostics?id=not%20an%20id")
            #expect(badID.status == .badRequest && badID.text.contains("'id' must be"), "\(badID.text)")
            try await socket.close()
        }
    }
}

struct DiagnosticsBody: Decodable {
    struct Handles: Decodable {
        let ids: [String]
        let count: Int
    }
    struct Route: Decodable {
        struct Stats: Decodable {
            let requests: Int
            let errors: Int
            let bytesIn: Int
            let bytesOut: Int
        }
        let route: String
        let stats: Stats
    }
    struct Client: Decodable {
        let id: String
        let connected: Bool
        let streaming: Bool
        let buffered: Int
        let dropped: Int
        let outboundQueued: Int
    }
    struct Places: Decodable {
        let held: Int
    }
    struct Handshakes: Decodable {
        let pending: Int
    }
    let isActive: Bool
    let handles: Handles
    let places: Places
    let handshakes: Handshakes
    let routes: [Route]
    let clients: [Client]
}

extension ControlPlaneTests {
    /// How many ids diagnostics list is the caller's to say (`clients=N`), and the answer was
    /// held, whole, outside the budget until the caller read it: 256 callers that asked for
    /// 65,536 ids and read nothing held about 4 GB. Past 256 KiB the answer takes its bytes
    /// from the budget until written, or is 503 when the budget can't cover it; the default
    /// listing is answered whatever the budget.
    @Test func aLargeDiagnosticsAnswerTheBudgetCanNotHoldIsRefused() async throws {
        let yaml = "limits:\n  maxClients: 5000\n  hostBufferBytes: 1048576\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            for index in 0..<3000 {
                let push = Message(headers: ["route": "p"], payload: ByteBuffer(repeating: 1, count: 200))
                host.host.directory.push(push, to: ClientID("away-\(10000 + index)")!, delivery: .reliable)
            }
            let held = host.host.directory.budget.usedBytes
            #expect(held > 600_000)
            // About 540 KB: more than the pushes left of the budget.
            let large = try await host.ipc().request(.GET, "/internal.conduit.diagnostics?clients=3000")
            #expect(large.status == .serviceUnavailable, "\(large.status) \(large.body.readableBytes) bytes")
            let refusal = String(large.text.prefix(300))
            #expect(refusal.contains("clients=N"), "\(refusal)")
            #expect(host.host.directory.budget.usedBytes == held)
            // The default listing is answered whatever the budget.
            let listed = try await host.ipc().request(.GET, "/internal.conduit.diagnostics").decode(DataEnvelope<DiagnosticsBody>.self).data
            #expect(listed.clients.count == 1000)
        }
    }

    @Test func aLargeDiagnosticsAnswerHoldsItsBytesOfTheBudgetUntilWritten() async throws {
        let yaml = "limits:\n  maxClients: 40000\n  hostBufferBytes: 33554432\nroutes:\n  - route: echo\n    handler: echo\n"
        try await TestHost.run(yaml: yaml, catalog: .ipcTests) { host in
            for index in 0..<30000 {
                host.host.directory.push(Message(headers: ["route": "p"]), to: ClientID("away-\(100000 + index)")!, delivery: .reliable)
            }
            let held = host.host.directory.budget.usedBytes
            // About 5.4 MB, more than the kernel's buffers take, asked for by a caller that
            // does not read: charged whole until the socket has taken it, then given back.
            let slow = try await RawTCPClient.connect(port: host.ipcPort, receiveBufferBytes: 4096)
            try await slow.pauseReading()
            try await slow.send("GET /internal.conduit.diagnostics?clients=30000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.sharedKey)\r\nConnection: close\r\n\r\n")
            try await waitUntil { host.host.directory.budget.usedBytes > held + 5_000_000 }
            try await slow.resumeReading()
            #expect(String(buffer: try await slow.readUntilClosed()).hasPrefix("HTTP/1.1 200"))
            try await waitUntil { host.host.directory.budget.usedBytes == held }
        }
    }
}
