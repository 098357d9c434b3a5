import Foundation

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
        self.init(host: file.host, port: file.port, ipcPort: file.ipcPort, sharedKey: file.sharedKey)
    }

    /// The most recently written `conduit-*.json` where hosts write them by default: in
    /// `$XDG_RUNTIME_DIR` when set, else `$TMPDIR`, else `/tmp`. The first of those holding any
    /// is searched (a host with `$XDG_RUNTIME_DIR` set was not found, and a stale file in /tmp
    /// was taken for it).
    public static func newestRuntimeFile() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let searched = [environment["XDG_RUNTIME_DIR"], environment["TMPDIR"], "/tmp"].compactMap { $0 }.filter { !$0.isEmpty }
        for directory in searched {
            let dated = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasPrefix("conduit-") && $0.hasSuffix(".json") }
                .map { (directory as NSString).appendingPathComponent($0) }
                .compactMap { path in (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date).map { (path, $0) } }
            if let newest = dated.max(by: { $0.1 < $1.1 }) { return newest.0 }
        }
        throw ConduitClientError(.connectFailed, "no running host found (no conduit-*.json in \(searched.joined(separator: ", ")))")
    }

    /// The fields of the runtime file a client needs.
    private struct RuntimeFileFields: Decodable {
        let host: String
        let port: Int?
        let ipcPort: Int?
        let sharedKey: String
    }
}
