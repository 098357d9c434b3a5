import CMallocTuning
import Foundation

/// glibc hands freed memory at the top of a heap back to the kernel once it passes a
/// threshold, and serves large blocks with their own mmap. A host that joins and echoes
/// 1 MiB requests then page-faults a fresh megabyte for every message: 2.7 ms of CPU per
/// 1 MiB echo, against 0.9 ms with the fixed thresholds below (Benchmarks, chunked-1MiB),
/// for ~2 MiB more peak RSS. Up to 16 MiB of freed heap is kept for reuse; blocks of 4 MiB
/// and more still get their own mapping. glibc's own MALLOC_* variables win when set.
enum MallocTuning {
    static func apply() {
        let environment = ProcessInfo.processInfo.environment
        conduit_fix_malloc_thresholds(
            4 << 20, 16 << 20,
            environment["MALLOC_MMAP_THRESHOLD_"] == nil ? 1 : 0,
            environment["MALLOC_TRIM_THRESHOLD_"] == nil ? 1 : 0
        )
    }
}
