#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The process groups of the children running now, killed when the host process exits. A stop
/// waits for its child (`requestTimeoutSeconds` when it has requests), but the host gives up on
/// a stop after `handlerStartStopSeconds` and exits: a child that ignores its closed input, its
/// kill not yet due, was left running with the host gone.
enum LiveChildGroups {
    private static let groups = Mutex<Set<Int32>>([])
    private static let killedAtExit: Void = {
        atexit { LiveChildGroups.killAll() }
    }()

    static func started(_ pid: Int32) {
        _ = killedAtExit
        groups.withLock { _ = $0.insert(pid) }
    }

    static func ended(_ pid: Int32) {
        groups.withLock { _ = $0.remove(pid) }
    }

    private static func killAll() {
        for pid in groups.withLock({ $0 }) { killProcessGroup(pid) }
    }
}
