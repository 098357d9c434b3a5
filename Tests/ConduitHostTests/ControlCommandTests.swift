import ConduitTesting
import ConduitWire
import Foundation
import Testing

/// `conduit status|pause|resume` against a running `conduit serve`, found through its runtime file.
@Suite("conduit status, pause, resume", .serialized, .timeLimit(.minutes(2)))
struct ControlCommandTests {
    @Test func pauseClosesSocketsResumeListensAgainStatusReportsIt() async throws {
        let runtimeFile = NSTemporaryDirectory() + "conduit-cli-\(UUID().uuidString).json"
        let server = try ConduitProcess(["serve"], environment: [
            "CONDUIT_SHARED_KEY": "cli-control-key", "CONDUIT_RUNTIME_FILE": runtimeFile,
        ])
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let port = try #require(announce["port"] as? Int)
        #expect(announce["ipcPort"] as? Int != nil)
        let client = try await TestWebSocketClient.connect(port: port, path: "/1/0?key=cli-control-key")

        let status = try await ConduitProcess.run(["status", "--runtime-file", runtimeFile])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains(#""isActive":true,"port":\#(port)"#), "\(status.stdout)")

        let pause = try await ConduitProcess.run(["pause", "--runtime-file", runtimeFile])
        #expect(pause.stdout.contains(#""isActive":false,"port":null"#), "\(pause.stdout) \(pause.stderr)")
        #expect(try await client.nextClose().code == 1001)

        let resume = try await ConduitProcess.run(["resume", "--runtime-file", runtimeFile])
        let answer = try JSONSerialization.jsonObject(with: Data(resume.stdout.utf8)) as! [String: [String: Any]]
        let newPort = try #require(answer["data"]?["port"] as? Int)
        let again = try await TestWebSocketClient.connect(port: newPort, path: "/1/0?key=cli-control-key")
        #expect(try await again.request(.init(headers: ["route": "echo", "token": "2"])).headers["token"] == "2")

        let missing = try await ConduitProcess.run(["status", "--runtime-file", runtimeFile + ".missing"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("can't read the runtime file"))

        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
        let gone = try await ConduitProcess.run(["status", "--runtime-file", runtimeFile])
        #expect(gone.status == 1, "no host: a clear error, exit 1")
    }

    /// Without `--runtime-file` both sides use the default place: a host with
    /// `$XDG_RUNTIME_DIR` set wrote its file there, and `status` looked in $TMPDIR and /tmp
    /// only ("no running host found", or another host's stale file).
    @Test func statusFindsAHostThatWroteItsFileToTheRuntimeDirectory() async throws {
        let runtimeDirectory = NSTemporaryDirectory() + "conduit-xdg-\(UUID().uuidString)"
        let emptyTemporary = NSTemporaryDirectory() + "conduit-tmp-\(UUID().uuidString)"
        for directory in [runtimeDirectory, emptyTemporary] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        }
        defer { for directory in [runtimeDirectory, emptyTemporary] { try? FileManager.default.removeItem(atPath: directory) } }
        var environment = ProcessInfo.processInfo.environment
        environment["CONDUIT_RUNTIME_FILE"] = nil
        environment["XDG_RUNTIME_DIR"] = runtimeDirectory
        environment["TMPDIR"] = emptyTemporary
        let server = try ConduitProcess(["serve"], environment: environment.merging(["CONDUIT_SHARED_KEY": "cli-xdg-key"]) { $1 })
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let port = try #require(announce["port"] as? Int)
        #expect((announce["runtimeFile"] as? String)?.hasPrefix(runtimeDirectory) == true)
        let status = try await ConduitProcess.run(["status"], environment: environment)
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains(#""port":\#(port)"#), "\(status.stdout)")
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }

    /// Only the first directory holding any runtime file was searched: a stale file in
    /// `$XDG_RUNTIME_DIR` (a killed host's) hid a running host whose file is in `$TMPDIR`.
    @Test func aStaleFileInTheRuntimeDirectoryDoesNotHideAHostInTMPDIR() async throws {
        let runtimeDirectory = NSTemporaryDirectory() + "conduit-xdg-\(UUID().uuidString)"
        let temporary = NSTemporaryDirectory() + "conduit-tmp-\(UUID().uuidString)"
        for directory in [runtimeDirectory, temporary] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        }
        defer { for directory in [runtimeDirectory, temporary] { try? FileManager.default.removeItem(atPath: directory) } }
        // A pid above any the kernel gives: no process has it.
        let stale = #"{"port":1,"ipcPort":1,"host":"127.0.0.1","pid":2147483646,"sharedKey":"stale-key-123"}"#
        try stale.write(toFile: runtimeDirectory + "/conduit-2147483646.json", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["CONDUIT_RUNTIME_FILE"] = nil
        environment["XDG_RUNTIME_DIR"] = ""
        environment["TMPDIR"] = temporary
        let server = try ConduitProcess(["serve"], environment: environment.merging(["CONDUIT_SHARED_KEY": "cli-tmp-key"]) { $1 })
        defer { server.killIfRunning() }
        let announce = try JSONSerialization.jsonObject(with: Data(try await server.firstLine().utf8)) as! [String: Any]
        let port = try #require(announce["port"] as? Int)
        environment["XDG_RUNTIME_DIR"] = runtimeDirectory
        let status = try await ConduitProcess.run(["status"], environment: environment)
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains(#""port":\#(port)"#), "\(status.stdout)")
        server.signal(SIGTERM)
        #expect(await server.exit() == 0)
    }
}
