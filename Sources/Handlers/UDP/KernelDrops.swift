import NIOCore

#if os(Linux)
import Glibc
#endif

/// The datagrams the kernel dropped for a socket since it opened, its receive buffer full:
/// Linux's `SO_MEMINFO` (its last field, `SK_MEMINFO_DROPS`). Nil where there is no such count.
enum KernelDrops {
    /// On the channel's event loop (the option is then read at once).
    static func read(_ channel: any Channel) -> Int? {
        #if os(Linux)
        guard let socket = channel as? any SocketOptionProvider else { return nil }
        // `SK_MEMINFO_VARS` fields of 32 bits; the kernel copies no more than asked.
        typealias MemoryInfo = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
        let info: EventLoopFuture<MemoryInfo> = socket.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_MEMINFO))
        // Completed already, on the loop: the callback runs now.
        var drops: Int?
        info.assumeIsolated().whenSuccess { drops = Int($0.8) }
        return drops
        #else
        return nil
        #endif
    }
}
