import CMallocTuning
import ConduitHost
import ServiceLifecycle

/// Buffers grow under load and drain again (a flood of chunks, a slow reader that leaves),
/// but glibc keeps what they freed in its per-thread arenas: the soak's host stayed 76 MB
/// above its baseline after every hostile client had gone. Once the host's buffer budget has
/// fallen 8 MiB below its highest level since the last time, the free memory is handed back
/// to the kernel (`malloc_trim`); while the budget stays level nothing is done.
struct FreedMemoryReturn: Service {
    let budget: BufferBudget
    static let interval = Duration.seconds(5)
    static let drop = 8 << 20

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { [budget] in
                var highest = budget.usedBytes
                while true {
                    try await Task.sleep(for: Self.interval)
                    let used = budget.usedBytes
                    highest = max(highest, used)
                    if highest - used >= Self.drop {
                        conduit_return_free_memory()
                        highest = used
                    }
                }
            }
        } catch is CancellationError {
            return
        }
    }
}
