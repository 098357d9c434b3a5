import Foundation

/// CPU time and memory of a process from /proc: the sum of its threads' on-CPU nanoseconds
/// (schedstat, exact, unlike the 10 ms ticks of /proc/PID/stat) and its resident set.
struct ProcessStats {
    let pid: Int32

    static var current: ProcessStats { ProcessStats(pid: getpid()) }

    /// Nanoseconds the process's threads have run so far.
    func cpuNanoseconds() -> UInt64 {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.reduce(0) { total, task in
            let line = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8)) ?? ""
            return total + (line.split(separator: " ").first.flatMap { UInt64($0) } ?? 0)
        }
    }

    /// A `VmRSS`/`VmHWM` style field of /proc/PID/status, in KiB.
    func memoryKiB(_ field: String) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
