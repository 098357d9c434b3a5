@testable import ConduitProcess
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
        let done = Thread.detachNewPipeMaker(maker)
        defer { maker.stop.store(true, ordering: .relaxed) }
        let listing = FileManager.default.temporaryDirectory.appendingPathComponent("child-pipe-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: listing) }
        for _ in 0..<200 {
            // What the program holds: a line per descriptor, "pipe:[inode]" for a pipe.
            try spawnAndWait("/bin/sh", ["sh", "-c", "readlink /proc/$$/fd/* >> \(listing)"])
        }
        maker.stop.store(true, ordering: .relaxed)
        await done.value
        let made = maker.inodes.withLock { $0 }
        #expect(made.count > 100, "the pipes were made while the programs started")
        let lines = try String(contentsOfFile: listing, encoding: .utf8).split(separator: "\n")
        let inherited = lines.filter { line in
            line.hasPrefix("pipe:[") && made.contains(UInt(line.dropFirst(6).dropLast()) ?? 0)
        }.map(String.init)
        #expect(inherited.count == 0, "200 programs held \(inherited.count) ends of the child pipes: \(inherited.prefix(5))…")
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
    let inodes = Mutex<Set<UInt>>([])

    func run() {
        while !stop.load(ordering: .relaxed) {
            guard let pipe = try? ChildPipe() else { continue }
            var status = stat()
            if fstat(pipe.read, &status) == 0 { inodes.withLock { _ = $0.insert(UInt(status.st_ino)) } }
            close(pipe.read)
            close(pipe.write)
        }
    }
}

extension Thread {
    /// Runs `maker` on a thread of its own (a tight loop has no place on the task pool); the
    /// task ends when it does.
    fileprivate static func detachNewPipeMaker(_ maker: PipeMaker) -> Task<Void, Never> {
        Task {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread {
                    maker.run()
                    finished.resume()
                }
            }
        }
    }
}
#endif
