import Foundation
import NIOCore
import NIOPosix
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One running child: its process id, a channel reading its stdout and writing its stdin, and a
/// channel reading its stderr. swift-subprocess starts it (an empty signal mask, default signal
/// actions, no descriptor of the host's, a process group of its own) and tells its end from its
/// own process descriptor; NIO owns the pipes.
///
/// Foundation's `Process` did neither: its children inherited the NIO thread's blocked signals
/// (SIGTERM, SIGINT, SIGHUP, SIGALRM did nothing to them), and an exit was seen only once every
/// holder of a socket it gave the child had closed it, then reaped by a `waitpid` that held the
/// one thread watching all children: a daemon the child left behind kept its route's requests
/// waiting, and a child that closed that socket (`ssh` does) held every other route's.
struct ChildProcess: Sendable {
    let pid: Int32
    /// Reads the child's stdout, writes its stdin.
    let channel: any Channel
    let stderr: any Channel

    /// Starts `command`; `onExit` is called (on any thread) with how it ended once it has.
    static func launch(
        _ command: ChildCommand, on eventLoop: any EventLoop,
        configureOutput: @escaping @Sendable (any Channel, Int32) throws -> Void,
        configureStderr: @escaping @Sendable (any Channel, Int32) throws -> Void,
        onExit: @escaping @Sendable (ChildExit) -> Void
    ) -> EventLoopFuture<ChildProcess> {
        let pipes: (stdin: ChildPipe, stdout: ChildPipe, stderr: ChildPipe)
        do {
            pipes = (try ChildPipe(), try ChildPipe(), try ChildPipe())
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let started = eventLoop.makePromise(of: Int32.self)
        Task.detached {
            var launched: Int32?
            do {
                let record = try await Subprocess.run(
                    .path(FilePath(command.executable.path)), arguments: Arguments(command.arguments),
                    environment: .custom(command.environment.map { Array("\($0.key)=\($0.value)\0".utf8) }),
                    workingDirectory: command.workingDirectory.map { FilePath($0.path) }, platformOptions: Self.platformOptions,
                    input: .fileDescriptor(FileDescriptor(rawValue: pipes.stdin.read), closeAfterSpawningProcess: true),
                    output: .fileDescriptor(FileDescriptor(rawValue: pipes.stdout.write), closeAfterSpawningProcess: true),
                    error: .fileDescriptor(FileDescriptor(rawValue: pipes.stderr.write), closeAfterSpawningProcess: true)
                ) { execution in
                    launched = execution.processIdentifier.value
                    LiveChildGroups.started(execution.processIdentifier.value)
                    started.succeed(execution.processIdentifier.value)
                }
                LiveChildGroups.ended(record.processIdentifier.value)
                switch record.terminationStatus {
                case .exited(let status): onExit(.status(status))
                case .signaled(let signal): onExit(.signal(signal))
                }
            } catch {
                // Started, but its end could not be awaited: it is ended here, and said so.
                if let launched {
                    killProcess(launched)
                    return onExit(.signal(SIGKILL))
                }
                // Not started: swift-subprocess has closed the child's ends (closing them here
                // too could close a descriptor another thread has been given since); ours go.
                for descriptor in [pipes.stdin.write, pipes.stdout.read, pipes.stderr.read] { _ = close(descriptor) }
                started.fail(ChildCommandError(description: "could not start \(command.executable.path): \(error)"))
            }
        }
        return started.futureResult.flatMap { pid in
            let channel = NIOPipeBootstrap(group: eventLoop)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try configureOutput(channel, pid) } }
                .takingOwnershipOfDescriptors(input: pipes.stdout.read, output: pipes.stdin.write)
            let stderrChannel = NIOPipeBootstrap(group: eventLoop)
                .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try configureStderr(channel, pid) } }
                .takingOwnershipOfDescriptor(input: pipes.stderr.read)
            return channel.and(stderrChannel).map { ChildProcess(pid: pid, channel: $0, stderr: $1) }
                .flatMapErrorThrowing { error in
                    killProcess(pid)
                    throw error
                }
        }
    }

    /// A process group of its own (`setpgid(0, 0)`), which `kill` ends whole.
    private static let platformOptions: PlatformOptions = {
        var options = PlatformOptions()
        options.processGroupID = 0
        return options
    }()

    func kill() {
        killProcess(pid)
    }

    /// Kills what is left of the child's process group once the child itself has exited (its
    /// pid alone may name another process by now).
    func killGroup() {
        killProcessGroup(pid)
    }
}

/// A pipe whose both ends are close-on-exec from their first instant: the child gets its own end
/// as 0, 1 or 2 only, and no other program inherits either (one would keep the pipe open, and the
/// child's end be seen only at the supervisor's cap). swift-subprocess closes what its children
/// would inherit anyway; this covers a program started otherwise meanwhile. `pipe` then `fcntl`
/// left both ends inheritable between the two calls.
struct ChildPipe: Sendable {
    let read: CInt
    let write: CInt

    init() throws {
        #if os(Linux)
        let ends = try FileDescriptor.pipe(options: .closeOnExec)
        #else
        // pipe2 is newer than the Darwin releases this builds for; swift-subprocess, which
        // starts the children, closes what they would inherit.
        let ends = try FileDescriptor.pipe()
        for end in [ends.readEnd, ends.writeEnd] { _ = fcntl(end.rawValue, F_SETFD, FD_CLOEXEC) }
        #endif
        (read, write) = (ends.readEnd.rawValue, ends.writeEnd.rawValue)
    }
}

/// Kills the child and the processes it started: each child leads a process group of its own.
/// Killing the child alone left what a wrapper (`sh -c`, `npm start`) or a forking child had
/// started running, one more at every restart.
private func killProcess(_ pid: Int32) {
    if !killProcessGroup(pid) { _ = kill(pid, SIGKILL) }
}

/// SIGKILL to the process group `pid` leads; false when there is none.
@discardableResult
func killProcessGroup(_ pid: Int32) -> Bool {
    kill(-pid, SIGKILL) == 0
}
