#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Yams

/// The files a route's options name (the value of every option whose key ends in `File`, at any
/// depth: `caFile`, `certificateFile`, `privateKeyFile`), as they were when the configuration
/// was read. A reload keeps a route's handler only when its definition is the same, and that
/// compared the YAML text alone: a certificate rotated in place was never picked up by a
/// reload, only by a restart. Only keys that say so: a path that is data (a log or a database
/// a process handler's child is given) changes all the time, and would restart the route at
/// every reload.
struct NamedFiles: Sendable, Equatable {
    /// What tells one version of a file from the next: replaced by a rename (a new inode), or
    /// rewritten in place (its size or modification time).
    struct Stamp: Sendable, Equatable {
        let device: UInt64
        let inode: UInt64
        let size: Int64
        let modifiedSeconds: Int
        let modifiedNanoseconds: Int
    }

    private let stamps: [String: Stamp]

    init(namedIn options: Node) {
        var stamps: [String: Stamp] = [:]
        Self.collect(options, into: &stamps)
        self.stamps = stamps
    }

    private static func collect(_ node: Node, into stamps: inout [String: Stamp]) {
        switch node {
        case .scalar:
            return
        case .mapping(let mapping):
            for (key, value) in mapping {
                if key.string?.hasSuffix("File") == true, let path = value.string, let stamp = stamp(of: path) {
                    stamps[path] = stamp
                } else {
                    collect(value, into: &stamps)
                }
            }
        case .sequence(let sequence):
            for item in sequence { collect(item, into: &stamps) }
        case .alias:
            return
        }
    }

    /// The stamp of a regular file at `path`; nil for anything else.
    private static func stamp(of path: String) -> Stamp? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        #if canImport(Darwin)
        let modified = info.st_mtimespec
        #else
        let modified = info.st_mtim
        #endif
        return Stamp(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: modified.tv_sec, modifiedNanoseconds: modified.tv_nsec)
    }
}
