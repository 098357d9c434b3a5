@testable import ConduitProcess
import ConduitTesting
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc

/// The pipes made for a child, while another thread starts a program that closes nothing it
/// inherits (as `posix_spawn` without file actions does): that program must hold none of them.
@Suite("Process handler: pipes for children")
struct ChildPipeTests {
    /// `pipe` then `fcntl(FD_CLOEXEC)` left both ends inheritable between the two calls: here
    /// the 200 programs held 60 to 70 ends (checked), and a child whose pipe another program
    /// holds is seen to end only at the supervisor's 3 s cap.
    @Test func noProgramStartedMeanwhileInheritsAChildsPipe() async throws {
        let maker = PipeMaker()
        // A thread of its own, started here: a task to start it waited for a place on the
        // pool, which a loaded run's tests held until every program had been started.
        Thread.detachNewThread { maker.run() }
        defer { maker.stop.store(true, ordering: .relaxed) }
        try await waitUntil { maker.made > 0 }
        let listing = FileManager.default.temporaryDirectory.appendingPathComponent("child-pipe-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: listing) }
        // At least 200 programs, while at least 1,000 pipes are made (a loaded machine can
        // leave the maker waiting for a core).
        let madeBefore = maker.made
        var started = 0
        while started < 200 || (maker.made - madeBefore < 1_000 && started < 5_000) {
            // What the program holds: a line per descriptor, "pipe:[inode]" for a pipe.
            try spawnAndWait("/bin/sh", ["sh", "-c", "readlink /proc/$$/fd/* >> \(listing)"])
            started += 1
        }
        maker.stop.store(true, ordering: .relaxed)
        try await waitUntil { maker.finished.load(ordering: .relaxed) }
        let made = maker.inodes.withLock { $0 }
        let lines = try String(contentsOfFile: listing, encoding: .utf8).split(separator: "\n")
        let inherited = lines.filter { line in
            line.hasPrefix("pipe:[") && made.contains(UInt(line.dropFirst(6).dropLast()) ?? 0)
        }
        #expect(inherited.count == 0, "\(started) programs held \(inherited.count) ends of the child pipes: \(inherited.prefix(5))…")
    }

    /// Starts `path` with the test's descriptors as they are (no file actions) and waits for it.
    private func spawnAndWait(_ path: String, _ arguments: [String]) throws {
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let started = posix_spawn(&pid, path, nil, nil, &argv, environ)
        guard started == 0 else { throw POSIXError(POSIXErrorCode(rawValue: started) ?? .EINVAL) }
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }
}

/// Makes and closes child pipes without pause, noting each one's inode.
private final class PipeMaker: Sendable {
    let stop = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)
    let inodes = Mutex<Set<UInt>>([])

    var made: Int { inodes.withLock { $0.count } }

    func run() {
        defer { finished.store(true, ordering: .relaxed) }
        while !stop.load(ordering: .relaxed) {
            guard let pipe = try? ChildPipe() else { continue }
            var status = stat()
            if fstat(pipe.read, &status) == 0 { inodes.withLock { _ = $0.insert(UInt(status.st_ino)) } }
            close(pipe.read)
            close(pipe.write)
        }
    }
}
#endif
