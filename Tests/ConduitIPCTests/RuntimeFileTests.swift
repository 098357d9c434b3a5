import ConduitClient
import ConduitHost
import ConduitTesting
import Foundation
import NIOHTTP1
import Testing

/// SPEC §6/§8: the runtime file holds the key, so it is written only by the host, mode 0600,
/// never through a file or link someone else planted where the host writes.
@Suite("Runtime file", .serialized, .timeLimit(.minutes(1)))
struct RuntimeFileTests {
    /// Checks the runtime file is a regular file of ours, mode 0600, holding the host's key.
    private func expectPrivate(_ path: String, key: String) throws {
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFREG, "a regular file, not a link")
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(info.st_uid == geteuid())
        #expect(try RuntimeFile.read(from: path).sharedKey == key)
    }

    /// Puts what no file can replace where the runtime file is: a directory holding a file (so
    /// the host's rename fails even for root, which no permission stops).
    private func blockRewrites(of path: String) throws {
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: path + "/blocker", contents: Data()))
    }

    /// A key or a start whose runtime file can't be written is undone: the caller is answered
    /// 500 and the file still tells the truth. The key was changed all the same, so the file
    /// (which the CLI reads) held a key that no longer opened anything; a start left the
    /// server listening on a port the file did not name.
    @Test func aControlCallWhoseRuntimeFileCantBeWrittenIsUndone() async throws {
        let directory = NSTemporaryDirectory() + "conduit-runtime-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/conduit.json"
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_RUNTIME_FILE": path]) { host in
            let ipc = host.ipc()
            #expect(try await ipc.request(.POST, "/internal.conduit.stop").status == .ok)
            try blockRewrites(of: path)

            let key = try await ipc.request(.POST, "/internal.conduit.setSharedKey?sharedKey=another-key-123")
            #expect(key.status == .internalServerError, "\(key.status) \(key.text)")
            #expect(host.sharedKey == TestHost.defaultKey, "the key is the one the file held")
            let start = try await ipc.request(.POST, "/internal.conduit.start")
            #expect(start.status == .internalServerError, "\(start.status) \(start.text)")
            let status = try await ipc.request(.GET, "/internal.conduit.status")
            #expect(status.text.contains("\"isActive\":false"), "\(status.text)")
        }
    }

    /// A stop whose runtime file can't be written stopped the server all the same and answered
    /// 500: the file named a port nothing listened on. The file is written first now, and a
    /// stop it can't record is not made.
    @Test func aStopWhoseRuntimeFileCantBeWrittenIsNotMade() async throws {
        let directory = NSTemporaryDirectory() + "conduit-runtime-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_RUNTIME_FILE": directory + "/conduit.json"]) { host in
            try blockRewrites(of: directory + "/conduit.json")
            let stop = try await host.ipc().request(.POST, "/internal.conduit.stop")
            #expect(stop.status == .internalServerError, "\(stop.status) \(stop.text)")
            let status = try await host.ipc().request(.GET, "/internal.conduit.status")
            #expect(status.text.contains("\"isActive\":true"), "\(status.text)")
            let client = try await host.connect(client: "still-listening")
            try await client.close()
        }
    }

    /// A file that is gone with its directory (a logout removes `$XDG_RUNTIME_DIR`) contradicts
    /// nothing: the change is made. Refused (500) as a file that can't be rewritten is, it left
    /// the socket server unpausable and a leaked key unrevocable over IPC.
    @Test func aChangeIsMadeWhenTheRuntimeFilesDirectoryIsGone() async throws {
        let directory = NSTemporaryDirectory() + "conduit-runtime-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_RUNTIME_FILE": directory + "/conduit.json"]) { host in
            try FileManager.default.removeItem(atPath: directory)
            let ipc = host.ipc()
            let stop = try await ipc.request(.POST, "/internal.conduit.stop")
            #expect(stop.status == .ok && stop.text.contains("\"isActive\":false"), "\(stop.status) \(stop.text)")
            let key = try await ipc.request(.POST, "/internal.conduit.setSharedKey?sharedKey=a-key-after-logout")
            #expect(key.status == .ok, "\(key.status) \(key.text)")
            #expect(host.sharedKey == "a-key-after-logout")
            let start = try await host.ipc().request(.POST, "/internal.conduit.start")
            #expect(start.status == .ok && start.text.contains("\"isActive\":true"), "\(start.status) \(start.text)")
            #expect(!FileManager.default.fileExists(atPath: directory), "nothing made the directory again")
        }
    }

    @Test func aPlantedLinkAtTheOldTemporaryNameIsNotFollowed() async throws {
        let path = NSTemporaryDirectory() + "conduit-planted-link-\(UUID().uuidString).json"
        let target = NSTemporaryDirectory() + "conduit-link-target-\(UUID().uuidString)"
        try "untouched".write(toFile: target, atomically: false, encoding: .utf8)
        #expect(symlink(target, path + ".tmp") == 0)
        defer { unlink(path + ".tmp"); unlink(target) }
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_RUNTIME_FILE": path]) { host in
            #expect(try await host.ipc().request(.POST, "/internal.conduit.stop").status == .ok)
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "untouched", "the key never goes through the link")
            try expectPrivate(path, key: host.sharedKey)
        }
    }

    @Test func aPlantedFileOwnedBySomeoneElseIsNotUsed() async throws {
        let path = NSTemporaryDirectory() + "conduit-planted-file-\(UUID().uuidString).json"
        #expect(FileManager.default.createFile(atPath: path + ".tmp", contents: nil, attributes: [.posixPermissions: 0o666]))
        // Owned by 'nobody' where the test may change owners (as root in CI).
        _ = chown(path + ".tmp", 65534, 65534)
        defer { unlink(path + ".tmp") }
        try await TestHost.run(catalog: .ipcTests, environment: ["CONDUIT_RUNTIME_FILE": path]) { host in
            #expect(try await host.ipc().request(.POST, "/internal.conduit.stop").status == .ok)
            try expectPrivate(path, key: host.sharedKey)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".tmp")).isEmpty, "the planted file got nothing")
        }
    }
}
