import ConduitClient
import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The `conduit` executable as a user runs it: check, routes, serve, SIGHUP, SIGTERM.
@Suite("conduit CLI", .serialized, .timeLimit(.minutes(2)))
struct CLITests {
    private func writeConfig(_ yaml: String) throws -> String {
        let path = NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func checkReportsFileLineColumnAndExits1() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echoo\n")
        let result = try await ConduitProcess.run(["check", path])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("\(path):2:5: error: unknown handler kind 'echoo'"), "\(result.stderr)")
        let served = try await ConduitProcess.run(["serve", "--config", path])
        #expect(served.status == 1)
        #expect(served.stderr.contains("\(path):2:5: error:"))
        #expect(served.stdout.isEmpty, "no announce line for a host that did not start")
    }

    /// A bad `server.cluster` passed `check` and failed `serve` in a file named "server.cluster".
    @Test func checkReportsABadClusterAtItsPlace() async throws {
        let path = try writeConfig("server:\n  cluster: {nats: 'http://x', name: a}\nroutes:\n  - route: echo\n    handler: echo\n")
        let result = try await ConduitProcess.run(["check", path])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("\(path):2:12: error: 'server.cluster': "), "\(result.stderr)")
    }

    /// Values `conduit check` once accepted (or trapped on) and that crashed a running host
    /// later: each is refused at load with its line, the process exiting 1, never by a signal.
    @Test(arguments: [
        ("limits:\n  maxMessageBytes: 5000000000\n", 2),
        ("limits:\n  handshakeTimeoutSeconds: 1e10\n", 2),
        ("limits:\n  clientGraceSeconds: 1e10\n", 2),
        ("limits:\n  ipcReplyTimeoutSeconds: 1e300\n", 2),
        ("limits:\n  hostBufferBytes: 9223372036854775807\n", 2),
        ("routes:\n  - route: p\n    handler: process\n    options: {command: [python3], requestTimeoutSeconds: 1e10}\n", 4),
        ("routes:\n  - route: p\n    handler: process\n    options: {command: [python3], requestTimeoutSeconds: 1e300}\n", 4),
        ("routes:\n  - route: u.*\n    handler: udp\n    options: {receiveBufferBytes: 5000000000}\n", 4),
        ("routes:\n  - route: a.*\n    handler: ai\n    options: {backend: openai, url: 'http://127.0.0.1:1', timeoutSeconds: 99999999999}\n", 4),
        ("routes:\n  - route: t.*\n    handler: tls\n    options: {connectTimeoutSeconds: 1e10}\n", 4),
        ("routes:\n  - route: a.*\n    handler: ai\n    options: {backend: builtin, tokensPerSecond: 1e-20}\n", 4),
    ])
    func outOfRangeNumbersAreRefusedAtLoadWithALocation(yaml: String, line: Int) async throws {
        let path = try writeConfig(yaml.hasPrefix("routes") ? yaml : yaml + "routes:\n  - route: echo\n    handler: echo\n")
        let result = try await ConduitProcess.run(["check", path])
        #expect(result.status == 1, "exit 1, not a crash: \(result.status) \(result.stderr)")
        #expect(result.stderr.hasPrefix("\(path):\(line):"), "\(result.stderr)")
    }

    /// Command-line numbers out of range are usage errors (exit 64, a sentence): `--count 0`
    /// trapped the UDP demo, and a port past 65,535 was never checked.
    /// A configured key shorter than 8 bytes is replaced by a random one (SPEC §2); its clients
    /// were refused 403 with no word of why. The host says so, without the key.
    @Test func aTooShortKeyIsReplacedWithAWarning() async throws {
        let result = try await ConduitProcess.run(
            ["demo", "udp", "--count", "1"],
            environment: ["CONDUIT_SHARED_KEY": "abc12", "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("shorter than 8 bytes: a random key is used instead"), "\(result.stderr)")
        #expect(!result.stderr.contains("abc12") && !result.stdout.contains("abc12"))
    }

    /// The AI demo's were checked only by the host it started, and its answer was reported as
    /// a usage error after the fact.
    @Test(arguments: [
        ["serve", "--port", "70000"], ["serve", "--port", "-1"], ["demo", "udp", "--count", "0"],
        ["demo", "ai", "--max-tokens", "0"], ["demo", "ai", "--max-tokens", "2000000"], ["demo", "ai", "--prompt", " "],
    ])
    func outOfRangeArgumentsAreUsageErrors(arguments: [String]) async throws {
        let result = try await ConduitProcess.run(arguments)
        #expect(result.status == 64, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains(arguments[arguments.count - 2]), "\(result.stderr)")
        #expect(!result.stdout.contains("host:"), "refused before a host started: \(result.stdout)")
    }

    /// A demo whose scenario fails once the host runs (here: no `ai.*` route) exits 1 with the
    /// reason, not 64 with a usage line: its options were fine.
    @Test func aDemoThatFailsOnceRunningIsNotAUsageError() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let result = try await ConduitProcess.run(
            ["demo", "ai", "--config", path], environment: ["CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json"])
        #expect(result.status == 1, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("NotFoundError") && !result.stderr.contains("Usage"), "\(result.stderr)")
    }

    /// A host that could not start because its port was taken said only "bind(descriptor:ptr:
    /// bytes:): Address already in use", naming neither the port nor which listener it was.
    @Test func aTakenPortIsNamedWhenServeCannotStart() async throws {
        let taken = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        defer { taken.close(promise: nil) }
        let port = try #require(taken.localAddress?.port)
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let result = try await ConduitProcess.run(["serve", "--config", path, "--port", "\(port)"])
        #expect(result.status == 1, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("cannot listen for WebSocket connections on 127.0.0.1:\(port): Address already in use"), "\(result.stderr)")
    }

    @Test func anOutOfRangeEnvironmentOverrideNamesTheVariable() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let result = try await ConduitProcess.run(["check", path], environment: ["CONDUIT_HANDSHAKE_TIMEOUT_SECONDS": "1e10"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("$CONDUIT_HANDSHAKE_TIMEOUT_SECONDS"), "\(result.stderr)")
    }

    @Test func checkAcceptsTheEmbeddedDefaultAndRoutesPrintsIt() async throws {
        let path = try writeConfig("routes:\n  - route: a.*\n    handler: echo\n  - route: echo\n    handler: echo\n")
        let check = try await ConduitProcess.run(["check", path])
        #expect(check.status == 0)
        #expect(check.stdout.contains("ok (2 routes)"))
        let routes = try await ConduitProcess.run(["routes", "--config", path])
        let lines = routes.stdout.split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(lines.map { $0.split(separator: " ").map(String.init) } == [["echo", "echo"], ["a.*", "echo"]])
        #expect(try await ConduitProcess.run(["routes"]).stdout.contains("echo"))
    }

    @Test func serveAnnouncesEchoesReloadsOnHangupAndShutsDownWith1001() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let runtimeFile = NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json"
        let server = try ConduitProcess(["serve", "--config", path], environment: [
            "CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": runtimeFile,
        ])
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let port = try #require(announce["port"] as? Int)
        #expect(announce["host"] as? String == "127.0.0.1")
        #expect(announce["pid"] as? Int == Int(server.process.processIdentifier))
        #expect(announce["runtimeFile"] as? String == runtimeFile)
        #expect(announce.keys.contains("ipcPort"))
        let attributes = try FileManager.default.attributesOfItem(atPath: runtimeFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try String(contentsOfFile: runtimeFile, encoding: .utf8).contains("cli-test-key"))

        let client = try await TestWebSocketClient.connect(port: port, path: "/1/0?key=cli-test-key")
        #expect(try await client.request(.init(headers: ["route": "echo", "token": "1"])).headers["token"] == "1")
        #expect(try await client.request(.init(headers: ["route": "later"])).headers["error"] == "NotFoundError")
        // Handler latencies are told apart below a millisecond (Prometheus' default buckets
        // start at 5 ms, where every echo landed).
        let ipc = IPCClient(port: try #require(announce["ipcPort"] as? Int), key: "cli-test-key")
        let metrics = String(buffer: try await ipc.request(.GET, "/metrics").body)
        #expect(metrics.contains(#"conduit_handler_duration_seconds_bucket{route="echo",le="0.00001"} "#), "\(metrics)")
        #expect(metrics.contains(#"conduit_handler_duration_seconds_bucket{route="echo",le="0.001"} "#))
        #expect(metrics.contains(#"conduit_handler_duration_seconds_count{route="echo"} 1"#))

        try "routes:\n  - route: echo\n    handler: echo\n  - route: later\n    handler: echo\n".write(toFile: path, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try await waitUntil {
            try await client.request(.init(headers: ["route": "later"])).headers["error"] == nil
        }
        try "routes: [broken".write(toFile: path, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        #expect(try await client.request(.init(headers: ["route": "later"])).headers["error"] == nil, "a bad file keeps the old table")

        server.signal(SIGTERM)
        #expect(try await client.nextClose().code == 1001)
        #expect(await server.exit() == 0)
        #expect(!FileManager.default.fileExists(atPath: runtimeFile), "the runtime file is removed at exit")
    }

    /// SIGHUP kept its default action, the end of the process, until the reload service ran,
    /// after the configuration was loaded: a reload sent while the host started killed it. The
    /// configuration comes through standard input here, so the host is certainly still loading
    /// it when the SIGHUP comes (and a file that is not a regular one is read now).
    @Test func aHangupWhileTheConfigurationLoadsDoesNotEndTheHost() async throws {
        let input = Pipe()
        let runtimeFile = NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json"
        let server = try ConduitProcess(["serve", "--config", "/dev/stdin"], environment: [
            "CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": runtimeFile,
        ], standardInput: input)
        defer { server.killIfRunning() }
        try await waitUntil { server.setsHangupAside }
        server.signal(SIGHUP)
        try input.fileHandleForWriting.write(contentsOf: Data("routes:\n  - route: echo\n    handler: echo\n".utf8))
        try input.fileHandleForWriting.close()
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let client = try await TestWebSocketClient.connect(port: try #require(announce["port"] as? Int), path: "/1/0?key=cli-test-key")
        #expect(try await client.request(.init(headers: ["route": "echo", "token": "1"])).headers["token"] == "1")
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }

    /// Run by an ordinary user, the host reset every connection it accepted: it asked for
    /// TCP_NODELAY at the socket level, where that number is SO_DEBUG, which only root may set,
    /// and SwiftNIO closes a connection whose option fails. Tests run as root never saw it;
    /// this one runs the host as `nobody` (65534) when it can.
    @Test func serveRunByAnOrdinaryUserAcceptsConnections() async throws {
        let directory = NSTemporaryDirectory() + "conduit-user-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o777])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/conduit.yaml"
        try "routes:\n  - route: echo\n    handler: echo\n".write(toFile: config, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: config)
        let user = getuid() == 0 ? (id: 65534, copyIn: directory) : nil
        let server = try ConduitProcess(
            ["serve", "--config", config], environment: ["CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": directory + "/runtime.json"],
            asUser: user)
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let ipc = IPCClient(port: try #require(announce["ipcPort"] as? Int), key: "cli-test-key")
        #expect(try await ipc.request(.POST, "/internal.conduit.status").status == .ok)
        let client = try await TestWebSocketClient.connect(port: try #require(announce["port"] as? Int), path: "/1/0?key=cli-test-key")
        #expect(try await client.request(.init(headers: ["route": "echo", "token": "1"])).headers["token"] == "1")
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
        // The Swift client too (it asked for the same option on its socket): the demo's.
        try FileManager.default.removeItem(atPath: directory + "/conduit")
        let demo = try await ConduitProcess.run(
            ["demo", "udp", "--count", "2"], environment: ["CONDUIT_RUNTIME_FILE": directory + "/demo.json"], asUser: user)
        #expect(demo.status == 0, "\(demo.stderr)")
    }

    /// `serve` raises its soft descriptor limit to the hard one, and lets connections waiting
    /// for their handshake take at most a quarter of it: never every descriptor.
    @Test func serveRaisesItsDescriptorLimitAndGivesWaitingHandshakesAQuarter() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let environment = ["CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json"]

        let raised = try ConduitProcess(["serve", "--config", path], environment: environment, descriptorLimit: (soft: 200, hard: nil))
        let announce = try JSONSerialization.jsonObject(with: Data(try await raised.firstLine().utf8)) as! [String: Any]
        let limits = try String(contentsOfFile: "/proc/\(try #require(announce["pid"] as? Int))/limits", encoding: .utf8)
        let openFiles = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let softAndHard = openFiles.split(separator: " ").compactMap { Int($0) }
        #expect(softAndHard.count == 2 && softAndHard[0] == softAndHard[1] && softAndHard[0] > 200, "\(openFiles)")
        raised.signal(SIGTERM)
        #expect(await raised.exit() == 0)

        let capped = try ConduitProcess(["serve", "--config", path], environment: environment, descriptorLimit: (soft: 200, hard: 200))
        let cappedAnnounce = try JSONSerialization.jsonObject(with: Data(try await capped.firstLine().utf8)) as! [String: Any]
        let ipc = IPCClient(port: try #require(cappedAnnounce["ipcPort"] as? Int), key: "cli-test-key")
        let response = try await ipc.request(.POST, "/internal.conduit.diagnostics")
        let diagnostics = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as! [String: Any]
        let handshakes = try #require((diagnostics["data"] as? [String: Any])?["handshakes"] as? [String: Any])
        #expect(handshakes["limit"] as? Int == 50 && handshakes["pending"] as? Int == 0, "\(handshakes)")
        capped.signal(SIGTERM)
        #expect(await capped.exit() == 0)
    }

    /// Discovery took the newest runtime file even when its host was gone (killed, it could
    /// not remove it): `status` then failed against the dead host's port while another ran.
    /// A file whose process is gone is passed over; one naming no port is refused in words.
    @Test func discoveryPassesOverTheFileOfAHostThatIsGone() async throws {
        let directory = NSTemporaryDirectory() + "conduit-discovery-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let server = try ConduitProcess(["serve", "--config", path], environment: ["CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": directory + "/conduit-live.json"])
        defer { server.killIfRunning() }
        _ = try await server.firstLine()
        // A process that has ended: its pid names nothing now.
        let gone = try ConduitProcess(["--help"])
        let gonePID = gone.pid
        _ = await gone.exit()
        let stale = "{\"host\":\"127.0.0.1\",\"port\":1,\"ipcPort\":1,\"pid\":\(gonePID),\"sharedKey\":\"stale-key-123\"}"
        try stale.write(toFile: directory + "/conduit-stale.json", atomically: true, encoding: .utf8)
        let environment = ["TMPDIR": directory, "XDG_RUNTIME_DIR": ""]
        let status = try await ConduitProcess.run(["status"], environment: environment)
        #expect(status.status == 0 && status.stdout.contains("\"isActive\":true"), "\(status.status) \(status.stderr)")

        let wrapped = "{\"host\":\"127.0.0.1\",\"port\":1,\"ipcPort\":70000,\"pid\":1,\"sharedKey\":\"stale-key-123\"}"
        try wrapped.write(toFile: directory + "/conduit-wrapped.json", atomically: true, encoding: .utf8)
        let refused = try await ConduitProcess.run(["status", "--runtime-file", directory + "/conduit-wrapped.json"])
        #expect(refused.status == 1 && refused.stderr.contains("70000, which is not a port"), "\(refused.stderr)")
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }

    /// The host gives up on a handler's stop after `handlerStartStopSeconds` and exits; a process
    /// route's child that ignores its closed input, its kill due only after its request's
    /// timeout, was left running with the host gone.
    @Test func aChildLeftByAStopGivenUpOnDiesWithTheHost() async throws {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let fixture = tests.appendingPathComponent("ConduitProcessTests/Fixtures/misbehaving.py").path
        let handlers = tests.deletingLastPathComponent().appendingPathComponent("handlers").path
        let yaml = """
            limits:
              handlerStartStopSeconds: 0.5
            routes:
              - route: fixture.*
                handler: process
                options: {command: [python3, \(fixture)], environment: {PYTHONPATH: \(handlers)}, requestTimeoutSeconds: 30}
            """
        let server = try ConduitProcess(["serve", "--config", try writeConfig(yaml)], environment: ["CONDUIT_SHARED_KEY": "cli-test-key"])
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let client = try await TestWebSocketClient.connect(port: try #require(announce["port"] as? Int), path: "/1/0?key=cli-test-key")
        let pid = try #require(Int32(String(buffer: try await client.request(Message(headers: ["route": "fixture.pid", "token": "p"])).payload)))
        defer { kill(pid, SIGKILL) }
        try await client.send(["route": "fixture.hang", "token": "h"])
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
        try await waitUntil(timeout: .seconds(10)) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
            return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
        }
    }

    /// An empty `TMPDIR` is unset, as the command line reads it: the host wrote its runtime
    /// file in the working directory, where `conduit status` never looked.
    @Test func anEmptyTMPDIRLeavesTheRuntimeFileInTmp() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let server = try ConduitProcess(["serve", "--config", path], environment: ["CONDUIT_SHARED_KEY": "cli-test-key", "TMPDIR": "", "XDG_RUNTIME_DIR": ""])
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        #expect(announce["runtimeFile"] as? String == "/tmp/conduit-\(server.pid).json")
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }

    /// UDP sockets bound over IPC alone took every descriptor the host had left (`maxSockets`,
    /// 1,024, was not held to the descriptor limit): then no WebSocket client could connect.
    /// They keep to a quarter of it, as waiting handshakes and IPC connections do.
    @Test func udpSocketsKeepToAQuarterOfTheDescriptors() async throws {
        let path = try writeConfig("routes:\n  - route: udp.*\n    handler: udp\n")
        // Ids named over IPC only: a loaded run took over 30 s, and the first ids' sockets
        // closed as their grace period ended, making room.
        let environment = [
            "CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json",
            "CONDUIT_CLIENT_GRACE_SECONDS": "3600",
        ]
        let server = try ConduitProcess(["serve", "--config", path], environment: environment, descriptorLimit: (soft: 200, hard: 200))
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let (port, ipcPort) = (try #require(announce["port"] as? Int), try #require(announce["ipcPort"] as? Int))
        let ipc = IPCClient(port: ipcPort, key: "cli-test-key")
        var bound = 0
        var refusal = ""
        for n in 0..<200 {
            let response = try await ipc.request(.POST, "/udp.bind?id=u\(n)")
            if response.status == .ok { bound += 1 } else { refusal = String(buffer: response.body) }
        }
        #expect(bound == 50, "\(bound) sockets bound")
        #expect(refusal.contains("descriptor limit"), "\(refusal)")
        let client = try await TestWebSocketClient.connect(port: port, path: "/after-udp/0?key=cli-test-key")
        try await client.close()
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }

    /// Idle IPC connections without the key took every descriptor (`ipcMaxConnections`, 256,
    /// was not held to the descriptor limit as waiting handshakes are): a keyed control call
    /// waited in the backlog until they timed out. The IPC listener keeps to a quarter of the
    /// descriptors, and makes room from connections that have not shown the key.
    @Test func idleConnectionsWithoutTheKeyDoNotLockOutTheControlPlane() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let environment = [
            "CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json",
            "CONDUIT_IPC_IDLE_TIMEOUT_SECONDS": "300",
        ]
        let server = try ConduitProcess(["serve", "--config", path], environment: environment, descriptorLimit: (soft: 200, hard: 200))
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let ipcPort = try #require(announce["ipcPort"] as? Int)
        var idle: [RawTCPClient] = []
        for _ in 0..<200 { idle.append(try await RawTCPClient.connect(port: ipcPort)) }
        let status = try await RawTCPClient.connect(port: ipcPort)
        try await status.send("GET /internal.conduit.status?key=cli-test-key HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        let answer = String(buffer: try await status.readUntilClosed(timeout: .seconds(20)))
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
        for connection in idle { try? await connection.close() }
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }

    /// Out of descriptors, accept fails while a connection waits in the backlog and the
    /// listening socket stays readable: the host tried again at once, for good, spinning a whole
    /// core (0.997 measured) on the loop that also serves its sockets; and the control plane
    /// could not accept either. The IPC listener now lets go of a descriptor it keeps in
    /// reserve, every listener waits 100 ms between tries, and new connections are served once
    /// descriptors are free again.
    @Test func outOfDescriptorsTheControlPlaneAnswersAndNoListenerSpins() async throws {
        let path = try writeConfig("routes:\n  - route: echo\n    handler: echo\n")
        let environment = ["CONDUIT_SHARED_KEY": "cli-test-key", "CONDUIT_RUNTIME_FILE": NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json"]
        let limit = 64
        let server = try ConduitProcess(["serve", "--config", path], environment: environment, descriptorLimit: (soft: limit, hard: limit))
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let pid = try #require(announce["pid"] as? Int)
        let (port, ipcPort) = (try #require(announce["port"] as? Int), try #require(announce["ipcPort"] as? Int))
        let socketPath = { (index: Int) in "/fd\(index)/0?key=cli-test-key" }
        var sockets: [TestWebSocketClient] = []
        // Each socket takes one of the host's descriptors.
        while try Self.openDescriptors(of: pid) < limit {
            sockets.append(try await TestWebSocketClient.connect(port: port, path: socketPath(sockets.count)))
        }
        // None left, but the control plane answers (twice: the reserve is kept again after the first).
        for _ in 0..<2 {
            let status = try await RawTCPClient.connect(port: ipcPort)
            try await status.send("GET /internal.conduit.status?key=cli-test-key HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            let answer = String(buffer: try await status.readUntilClosed(timeout: .seconds(10)))
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
        }

        // Connections waiting to be accepted: the WebSocket listener must not spin.
        var waiting: [RawTCPClient] = []
        for _ in 0..<2 { waiting.append(try await RawTCPClient.connect(port: port)) }
        let busy = try Self.cpuSeconds(of: pid)
        try await Task.sleep(for: .seconds(2))
        let spent = try Self.cpuSeconds(of: pid) - busy
        #expect(spent < 0.5, "\(spent) s of CPU in 2 s without descriptors")

        // `stop`, the call that frees descriptors, was refused (500): the runtime file, written
        // first, needs one. Now made, and recorded once it has freed some.
        let stopped = try await Self.control("stop", ipcPort: ipcPort)
        #expect(stopped.hasPrefix("HTTP/1.1 200") && stopped.contains("\"isActive\":false"), "\(stopped.prefix(300))")
        let runtimeFile = try RuntimeFile.read(from: environment["CONDUIT_RUNTIME_FILE"]!)
        #expect(runtimeFile.port == nil, "the runtime file names no port once stopped")
        // The host closed them (1001) as it stopped.
        for socket in sockets { try? await socket.close() }
        for connection in waiting { try? await connection.close() }
        let started = try await Self.control("start", ipcPort: ipcPort)
        let newPort = try #require(started.firstMatch(of: /"port":(\d+)/).flatMap { Int($0.1) }, "\(started.prefix(300))")
        let again = try await TestWebSocketClient.connect(port: newPort, path: socketPath(limit))
        let echoed = try await again.request(Message(headers: ["route": "echo", "token": "back"]), timeout: .seconds(30))
        #expect(echoed.headers["token"] == "back")
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }

    /// A control route over a raw connection (a client of its own would need descriptors the
    /// test process may lack): the whole response.
    private static func control(_ name: String, ipcPort: Int) async throws -> String {
        let connection = try await RawTCPClient.connect(port: ipcPort)
        try await connection.send("POST /internal.conduit.\(name)?key=cli-test-key HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return String(buffer: try await connection.readUntilClosed(timeout: .seconds(10)))
    }

    private static func openDescriptors(of pid: Int) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }

    /// User and system time the process has used, from /proc (clock ticks of 1/100 s).
    private static func cpuSeconds(of pid: Int) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
        let fields = try #require(stat.split(separator: ")").last).split(separator: " ")
        return Double(Int(fields[11])! + Int(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
