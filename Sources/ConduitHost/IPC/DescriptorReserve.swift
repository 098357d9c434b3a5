#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// One descriptor kept open (on /dev/null) for the IPC listener: when sockets have taken all
/// the others, it is closed so that the control plane can still accept a connection (a client
/// with the key that opened sockets up to the limit otherwise left status, diagnostics and
/// stop unreachable until some closed), and opened again once an IPC connection has closed.
final class DescriptorReserve: Sendable {
    private let descriptor = Mutex<Int32?>(nil)

    init() {
        restore()
    }

    deinit {
        if let kept = descriptor.withLock({ $0 }) { close(kept) }
    }

    /// Closes the kept descriptor for the next accept to take; false when none was kept.
    func release() -> Bool {
        guard let kept = descriptor.withLock({ kept in defer { kept = nil }; return kept }) else { return false }
        close(kept)
        return true
    }

    /// Keeps a descriptor again if none is kept (when none is free, at the next try).
    func restore() {
        descriptor.withLock { kept in
            guard kept == nil else { return }
            let opened = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if opened >= 0 { kept = opened }
        }
    }
}
