#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open descriptors (`RLIMIT_NOFILE`). A host holds one per
/// connection, UDP socket and TLS upstream, and its listeners need one to accept: at the usual
/// soft limit (1,024 on Linux desktops, 256 on macOS) a few hundred clients leave none, and
/// then no listener accepts, the control plane's included.
public enum DescriptorLimit {
    /// The soft limit in force.
    public static var current: Int { Int(clamping: read().rlim_cur) }

    /// Raises the soft limit to the hard one (on macOS at most `OPEN_MAX`), as Go's runtime
    /// does for every program; child processes inherit it. Returns the soft limit before and after.
    @discardableResult
    public static func raise() -> (from: Int, to: Int) {
        var limit = read()
        let before = limit.rlim_cur
        #if canImport(Darwin)
        limit.rlim_cur = min(limit.rlim_max, rlim_t(OPEN_MAX))
        #else
        limit.rlim_cur = limit.rlim_max
        #endif
        if limit.rlim_cur > before { write(limit) }
        return (Int(clamping: before), current)
    }

    private static func read() -> rlimit {
        var limit = rlimit()
        #if os(Linux)
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        #else
        getrlimit(RLIMIT_NOFILE, &limit)
        #endif
        return limit
    }

    private static func write(_ limit: rlimit) {
        var limit = limit
        #if os(Linux)
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        #else
        setrlimit(RLIMIT_NOFILE, &limit)
        #endif
    }
}
