import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a host listens and the key it wants: given directly, or read from the runtime file a
/// host writes at start (SPEC §6; mode 0600, it holds the key).
public struct HostAddress: Sendable, Hashable {
    public var host: String
    /// The socket server's port; nil when unknown or paused (asked over IPC when needed).
    public var port: Int?
    /// The IPC listener's port: status, port discovery after a pause, and the fallback.
    public var ipcPort: Int?
    /// Where the IPC listener is: the loopback, whatever `host` the socket server listens on
    /// (SPEC §6). Taken from `host`, a host on `::1` was asked over IPC where nothing listens.
    public var ipcHost: String
    public var sharedKey: String

    public init(host: String = "127.0.0.1", port: Int? = nil, ipcPort: Int? = nil, ipcHost: String = "127.0.0.1", sharedKey: String) {
        self.host = host
        self.port = port
        self.ipcPort = ipcPort
        self.ipcHost = ipcHost
        self.sharedKey = sharedKey
    }

    /// Reads a host's runtime file (default: the newest `conduit-*.json`, see `newestRuntimeFile`).
    public init(runtimeFile path: String? = nil) throws {
        let path = try path ?? Self.newestRuntimeFile()
        let file: RuntimeFileFields
        do {
            file = try JSONDecoder().decode(RuntimeFileFields.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ConduitClientError(.connectFailed, "can't read the runtime file \(path): \(error)")
        }
        for port in [file.port, file.ipcPort].compactMap(\.self) where !(1...65_535).contains(port) {
            throw ConduitClientError(.connectFailed, "the runtime file \(path) names \(port), which is not a port")
        }
        self.init(host: file.host, port: file.port, ipcPort: file.ipcPort, sharedKey: file.sharedKey)
    }

    /// The most recently written `conduit-*.json` of a host still running, where hosts write
    /// them by default: in `$XDG_RUNTIME_DIR` when set, else `$TMPDIR`, else `/tmp`, searched in
    /// that order (a host with `$XDG_RUNTIME_DIR` set was not found, and a stale file in /tmp was
    /// taken for it). A file whose process is gone (a host killed, which could not remove it) is
    /// passed over: taken for the newest, it hid the host that runs, in its own directory or in
    /// a later one. When no file's process runs, the newest of the first directory holding any
    /// (its host does not answer).
    public static func newestRuntimeFile() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let searched = [environment["XDG_RUNTIME_DIR"], environment["TMPDIR"], "/tmp"].compactMap { $0 }.filter { !$0.isEmpty }
        var newestStale: String?
        for directory in searched {
            let newestFirst = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasPrefix("conduit-") && $0.hasSuffix(".json") }
                .map { (directory as NSString).appendingPathComponent($0) }
                .compactMap { path in (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date).map { (path, $0) } }
                .sorted { $0.1 > $1.1 }
                .map(\.0)
            if let running = newestFirst.first(where: isOfARunningHost) { return running }
            newestStale = newestStale ?? newestFirst.first
        }
        if let newestStale { return newestStale }
        throw ConduitClientError(.connectFailed, "no running host found (no conduit-*.json in \(searched.joined(separator: ", ")))")
    }

    /// Whether the process the runtime file names still runs (signal 0: EPERM means it runs
    /// as another user).
    private static func isOfARunningHost(_ path: String) -> Bool {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)),
            let pid = (try? JSONDecoder().decode(RuntimeFilePID.self, from: data))?.pid, pid > 0, pid <= Int(Int32.max)
        else { return false }
        return kill(pid_t(pid), 0) == 0 || errno == EPERM
    }

    /// The fields of the runtime file a client needs.
    private struct RuntimeFileFields: Decodable {
        let host: String
        let port: Int?
        let ipcPort: Int?
        let sharedKey: String
    }

    private struct RuntimeFilePID: Decodable {
        let pid: Int
    }
}
