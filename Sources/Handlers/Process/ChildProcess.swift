import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One running child: the process, a channel reading its stdout and writing its stdin, and a
/// channel reading its stderr. Foundation starts the process; NIO owns the pipes from then on.
struct ChildProcess: Sendable {
    let pid: Int32
    /// Reads the child's stdout, writes its stdin.
    let channel: any Channel
    let stderr: any Channel
    private let process: Process

    /// Starts `command`; `onExit` is called (on any thread) with how it ended once it has.
    static func launch(
        _ command: ChildCommand, on eventLoop: any EventLoop,
        configureOutput: @escaping @Sendable (any Channel, Int32) throws -> Void,
        configureStderr: @escaping @Sendable (any Channel, Int32) throws -> Void,
        onExit: @escaping @Sendable (ChildExit) -> Void
    ) -> EventLoopFuture<ChildProcess> {
        let process = Process()
        process.executableURL = command.executable
        process.arguments = command.arguments
        process.environment = command.environment
        if let directory = command.workingDirectory { process.currentDirectoryURL = directory }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        process.terminationHandler = { process in
            onExit(process.terminationReason == .uncaughtSignal ? .signal(process.terminationStatus) : .status(process.terminationStatus))
        }
        let descriptors: (input: CInt, output: CInt, stderr: CInt)
        do {
            try process.run()
            // NIO closes what it owns; Foundation's handles close theirs, so NIO gets copies
            // (close-on-exec, so no later child inherits them and keeps a pipe open).
            descriptors = (
                try takeDescriptor(stdout.fileHandleForReading), try takeDescriptor(stdin.fileHandleForWriting),
                try takeDescriptor(stderr.fileHandleForReading)
            )
        } catch {
            if process.isRunning { killProcess(process.processIdentifier) }
            return eventLoop.makeFailedFuture(error)
        }
        let pid = process.processIdentifier
        let channel = NIOPipeBootstrap(group: eventLoop)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try configureOutput(channel, pid) } }
            .takingOwnershipOfDescriptors(input: descriptors.input, output: descriptors.output)
        let stderrChannel = NIOPipeBootstrap(group: eventLoop)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try configureStderr(channel, pid) } }
            .takingOwnershipOfDescriptor(input: descriptors.stderr)
        return channel.and(stderrChannel).map { ChildProcess(pid: pid, channel: $0, stderr: $1, process: process) }
            .flatMapErrorThrowing { error in
                killProcess(pid)
                throw error
            }
    }

    func kill() {
        killProcess(pid)
    }

    private static func takeDescriptor(_ handle: FileHandle) throws -> CInt {
        let copy = fcntl(handle.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw ChildCommandError(description: "could not take the child's pipe: errno \(errno)") }
        try handle.close()
        return copy
    }
}

/// Kills the child and the processes it started: Foundation starts each child as the leader of
/// a process group of its own. Killing the child alone left what a wrapper (`sh -c`, `npm
/// start`) or a forking child had started running, one more at every restart.
private func killProcess(_ pid: Int32) {
    if kill(-pid, SIGKILL) != 0 { _ = kill(pid, SIGKILL) }
}
