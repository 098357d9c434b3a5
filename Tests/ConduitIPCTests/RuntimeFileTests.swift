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
