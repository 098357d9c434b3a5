import Foundation

/// Where a host listens and the key it wants: given directly, or read from the runtime file a
/// host writes at start (SPEC §6; mode 0600, it holds the key).
public struct HostAddress: Sendable, Hashable {
    public var host: String
    /// The socket server's port; nil when unknown or paused (asked over IPC when needed).
    public var port: Int?
    /// The IPC listener's port: status, port discovery after a pause, and the fallback.
    public var ipcPort: Int?
    public var sharedKey: String

    public init(host: String = "127.0.0.1", port: Int? = nil, ipcPort: Int? = nil, sharedKey: String) {
        self.host = host
        self.port = port
        self.ipcPort = ipcPort
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

    /// The most recently written `conduit-*.json` in $TMPDIR and /tmp, where hosts write them.
    public static func newestRuntimeFile() throws -> String {
        let directories = Set([ProcessInfo.processInfo.environment["TMPDIR"], "/tmp"].compactMap { $0 })
        let candidates = directories.flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasPrefix("conduit-") && $0.hasSuffix(".json") }
                .map { (directory as NSString).appendingPathComponent($0) }
        }
        let dated = candidates.compactMap { path in
            (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date).map { (path, $0) }
        }
        guard let newest = dated.max(by: { $0.1 < $1.1 }) else {
            throw ConduitClientError(
                .connectFailed,
                "no running host found (no conduit-*.json in \(directories.sorted().joined(separator: " or ")))"
            )
        }
        return newest.0
    }

    /// The fields of the runtime file a client needs.
    private struct RuntimeFileFields: Decodable {
        let host: String
        let port: Int?
        let ipcPort: Int?
        let sharedKey: String
    }
}
