import ConduitKit
import Foundation

/// Where a running host can be found (SPEC §6): one JSON line on stdout at start, and the same
/// facts plus the shared key in a file only its owner can read (mode 0600).
public struct Endpoints: Sendable, Codable, Equatable {
    /// The socket server's port; nil while paused.
    @NullWhenAbsent public var port: Int?
    @NullWhenAbsent public var ipcPort: Int?
    public var host: String
    public var pid: Int32
    public var runtimeFile: String

    /// The announce line: no key in it, since stdout often ends up in logs.
    public var announceLine: String {
        String(decoding: (try? JSONEncoder.conduit.encode(self)) ?? Data(), as: UTF8.self)
    }
}

/// The runtime file: the endpoints and the shared key.
public struct RuntimeFile: Sendable, Codable, Equatable {
    @NullWhenAbsent public var port: Int?
    @NullWhenAbsent public var ipcPort: Int?
    public var host: String
    public var pid: Int32
    public var sharedKey: String

    /// `$XDG_RUNTIME_DIR/conduit-<pid>.json` (a directory only the user can enter) when set,
    /// else `$TMPDIR` or `/tmp`, unless configured. An empty variable counts as unset, as where
    /// the command line looks: an empty `TMPDIR` put the file in the working directory, where
    /// nothing found it.
    static func defaultPath(pid: Int32) -> String {
        let environment = ProcessInfo.processInfo.environment
        let directory = [environment["XDG_RUNTIME_DIR"], environment["TMPDIR"]].compactMap { $0 }.first { !$0.isEmpty } ?? "/tmp"
        return (directory as NSString).appendingPathComponent("conduit-\(pid).json")
    }

    /// Writes the file atomically with mode 0600. The temporary file has a name nobody can
    /// predict and is created anew (`O_EXCL`), never through a link (`O_NOFOLLOW`), and checked
    /// to be ours before the key goes in; `rename` then replaces whatever the path held (a
    /// planted link included) without following it.
    func write(to path: String) throws {
        let data = try JSONEncoder.conduit.encode(self)
        let temporary = "\(path).\(UInt64.random(in: 0...UInt64.max)).tmp"
        let fd = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RuntimeFileError(path: path, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o077 == 0 else {
            close(fd)
            unlink(temporary)
            throw RuntimeFileError(path: path, errno: EPERM)
        }
        let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == data.count, rename(temporary, path) == 0 else {
            let failure = errno
            unlink(temporary)
            throw RuntimeFileError(path: path, errno: failure)
        }
    }

    /// Whether anything is at `path` (a link is not followed).
    static func exists(at path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    public static func read(from path: String) throws -> RuntimeFile {
        try JSONDecoder().decode(RuntimeFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

struct RuntimeFileError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32
    var description: String { "can't write the runtime file \(path): \(String(cString: strerror(errno)))" }
    /// The process (EMFILE) or the system (ENFILE) has no descriptor left.
    var isOutOfDescriptors: Bool { errno == EMFILE || errno == ENFILE }
}
