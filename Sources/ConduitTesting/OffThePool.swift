import Foundation

/// Runs blocking work (reading a child's pipe to its end, waiting for it to exit) on a thread
/// of its own and awaits the result. Done in a task, it holds one of the cooperative pool's
/// few threads (two on a 2-core machine): two such waits at once, for children that talk to a
/// host in the same process, left no thread for the host, and every test of the process hung.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}
