import ConduitTesting
import Foundation

/// The built `conduit` executable run as a child process, as a user runs it.
struct ConduitProcess {
    static let executable: URL = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return root.appending(path: ".build/debug/conduit")
    }()

    let process = Process()
    private let stdout = Pipe()
    private let stderr = Pipe()

    /// `descriptorLimit`: started through `prlimit` with that soft limit on open descriptors
    /// (and that hard one, when given). `asUser`: started through `setpriv` as that user and
    /// group, from a copy of the executable it can run (the checkout may be closed to it).
    init(
        _ arguments: [String], environment: [String: String] = [:], descriptorLimit: (soft: Int, hard: Int?)? = nil,
        asUser user: (id: Int, copyIn: String)? = nil, standardInput: Pipe? = nil
    ) throws {
        if let user {
            let copy = user.copyIn + "/conduit"
            try FileManager.default.copyItem(atPath: Self.executable.path, toPath: copy)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(user.id)", "--regid=\(user.id)", "--clear-groups", copy] + arguments
        } else if let descriptorLimit {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            process.arguments = ["--nofile=\(descriptorLimit.soft):\(descriptorLimit.hard.map(String.init) ?? "")", Self.executable.path] + arguments
        } else {
            process.executableURL = Self.executable
            process.arguments = arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let standardInput { process.standardInput = standardInput }
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    /// Runs to completion and returns the exit code and both outputs.
    static func run(
        _ arguments: [String], environment: [String: String] = [:], asUser user: (id: Int, copyIn: String)? = nil
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ConduitProcess(arguments, environment: environment, asUser: user)
        // Read while it runs: a child whose output fills a pipe never exits.
        async let stdout = offThePool { [pipe = child.stdout] in Self.readAll(pipe) }
        async let stderr = offThePool { [pipe = child.stderr] in Self.readAll(pipe) }
        let status = await child.exit()
        return (status, await stdout, await stderr)
    }

    /// The first line on stdout (the announce line of `serve`).
    func firstLine() async throws -> String {
        let handle = stdout.fileHandleForReading
        let line = await offThePool { () -> String? in
            var bytes: [UInt8] = []
            while true {
                let chunk = handle.availableData
                guard !chunk.isEmpty else { return nil }
                bytes += chunk
                if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                    return String(decoding: bytes[..<newline], as: UTF8.self)
                }
            }
        }
        guard let line else { throw CocoaError(.fileReadUnknown) }
        return line
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Whether the process has set SIGHUP's default action (its end) aside: bit 0 of `SigIgn`
    /// or `SigCgt` (ignored, or caught) in /proc (Linux).
    var setsHangupAside: Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return false }
        return status.split(separator: "\n").contains { line in
            guard line.hasPrefix("SigIgn:") || line.hasPrefix("SigCgt:"),
                  let mask = UInt64(line.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
            return mask & 1 != 0
        }
    }

    var pid: Int32 { process.processIdentifier }

    /// For a test's `defer`: one that failed before its SIGTERM left a host running.
    func killIfRunning() {
        if process.isRunning { signal(SIGKILL) }
    }

    func exit() async -> Int32 {
        await offThePool { [process] in
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    private static func readAll(_ pipe: Pipe) -> String {
        String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}
