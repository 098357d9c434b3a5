import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import NIOCore
import Testing

/// The seed's statics as `IPCEndpoint` methods: status, diagnostics, waitForActiveState,
/// getSharedKey, setSharedKey.
@Suite("Client: control plane", .serialized, .timeLimit(.minutes(1)))
struct ControlPlaneTests {
    /// `close()` left a connect asking IPC for the port waiting for the answer, or for IPC's
    /// timeout (60 s): it ends the connect at once, with `.closed`.
    @Test func closeEndsAConnectAskingIPCForThePort() async throws {
        let silent = try await SilentTCPServer.start()
        let conduit = Conduit(id: "closed-asking", address: HostAddress(ipcPort: silent.port, sharedKey: "silent-key"))
        let connecting = Task { try await conduit.connect() }
        try await Task.sleep(for: .milliseconds(300))
        let closed = ContinuousClock.now
        conduit.close()
        let error = await #expect(throws: ConduitClientError.self) { try await connecting.value }
        #expect(error?.code == .closed, "\(String(describing: error))")
        #expect(closed.duration(to: .now) < .seconds(20), "the connect ended \(closed.duration(to: .now)) after close()")
        try await silent.stop()
    }

    /// A listener that takes the connection and never answers held every IPC call forever
    /// (a status, an invocation over the fallback, the events stream's head).
    @Test func aListenerThatNeverAnswersFailsEveryCallInTime() async throws {
        let silent = try await SilentTCPServer.start()
        let ipc = IPCEndpoint(port: silent.port, sharedKey: "silent-key", timeout: .milliseconds(300))
        let started = ContinuousClock.now
        let status = await #expect(throws: ConduitClientError.self) { try await ipc.status() }
        #expect(status?.code == .ipcFailed)
        await #expect(throws: (any Error).self) { try await ipc.invoke(route: "echo") }
        await #expect(throws: IPCClientError.self) { try await ipc.events(for: "silent") { _ in true } }
        #expect(ContinuousClock.now - started < .seconds(10))
        try await silent.stop()
    }

    /// The IPC listener is on 127.0.0.1 whatever `server.host` is (SPEC §6), but the client
    /// asked the runtime file's `host`: a host on `::1` was asked for its status, its port after
    /// a pause and its events stream where nothing listens.
    @Test func aHostOnAnotherAddressIsAskedOverIPCOnTheLoopback() async throws {
        try await TestHost.run(yaml: "server:\n  host: \"::1\"\n" + TestHost.clientYAML, catalog: .clientTests) { host in
            let address = try HostAddress(runtimeFile: host.endpoints.runtimeFile)
            #expect(address.host == "::1" && address.ipcHost == "127.0.0.1")
            let conduit = Conduit(id: "v6", address: address)
            try await conduit.connect()
            let status = try await #require(conduit.ipc).status()
            #expect(status.isActive && status.port == host.port)
            conduit.close()
        }
    }

    @Test func statusDiagnosticsAndWaitingForTheActiveState() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "c1")
            try await conduit.connect()
            let ipc = try #require(conduit.ipc)
            let status = try await ipc.status()
            #expect(status.isActive && status.port == host.port && status.sharedKey == host.sharedKey)
            _ = try await conduit.request(route: "echo", payload: ByteBuffer(string: "count me"))
            let diagnostics = try await ipc.diagnostics()
            #expect(diagnostics.isActive && diagnostics.handles.ids == ["c1"] && diagnostics.handles.count == 1)
            let echo = try #require(diagnostics.routes.first { $0.route == "echo" })
            // Payload bytes both ways: the socket counted the whole frame in, the payload out.
            #expect(echo.handler == "echo" && echo.stats.requests == 1 && echo.stats.bytesIn == 8 && echo.stats.bytesOut == 8, "\(echo.stats)")
            _ = try await ipc.invoke(route: "echo", payload: ByteBuffer(string: "over IPC"))
            let both = try #require(try await ipc.diagnostics().routes.first { $0.route == "echo" })
            #expect(both.stats.bytesIn == 16 && both.stats.bytesOut == 16, "\(both.stats)")
            #expect(diagnostics.clients.first { $0.id == "c1" }?.connected == true)

            try await ipc.stop()
            let inactive = await #expect(throws: ConduitClientError.self) {
                try await ipc.waitForActiveState(maxQueriesForStatus: 2, interval: .milliseconds(10))
            }
            #expect(inactive?.code == .ipcFailed)
            try await ipc.start()
            let active = try await ipc.waitForActiveState()
            #expect(active.isActive && active.port != nil)
            conduit.close()
        }
    }

    @Test func rotatingTheKeyKeepsTheSocketAndReconnectsWithTheNewKey() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let conduit = host.client(id: "c2")
            let recorder = Recorder(conduit)
            try await conduit.connect()
            let ipc = try #require(conduit.ipc)
            #expect(try await ipc.getSharedKey() == host.sharedKey)
            let tooShort = await #expect(throws: ConduitReplyError.self) { try await ipc.setSharedKey("short") }
            #expect(tooShort?.type == "BadRequestError")

            let rotated = try await ipc.setSharedKey("a-new-key-of-16b")
            #expect(rotated.sharedKey == "a-new-key-of-16b" && ipc.sharedKey == "a-new-key-of-16b")
            #expect(try await ipc.getSharedKey() == "a-new-key-of-16b", "the endpoint uses the new key")
            #expect(String(buffer: try await conduit.request(route: "echo", payload: ByteBuffer(string: "open")).payload) == "open")

            try await ipc.stop()
            try await ipc.start()
            try await recorder.waitFor { $0.isReopen }
            #expect(String(buffer: try await conduit.request(route: "echo", payload: ByteBuffer(string: "new key")).payload) == "new key")

            let stale = IPCEndpoint(port: ipc.port, sharedKey: TestHost.defaultKey)
            let refused = await #expect(throws: ConduitReplyError.self) { try await stale.status() }
            #expect(refused?.type == "ForbiddenError")
            conduit.close()
        }
    }
}
