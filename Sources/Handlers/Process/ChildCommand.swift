import Foundation

/// The command line of the child, resolved once when the route is built: a bare program name
/// is looked up in PATH then, and a path is checked, so a missing interpreter or script is an
/// error at start-up (with the route's file:line:column), not at the first request. A relative
/// path is relative to `workingDirectory` when there is one (as `cd dir && ./tool`).
struct ChildCommand: Sendable {
    let executable: URL
    let arguments: [String]
    /// The child's working directory; nil: the host's.
    let workingDirectory: URL?
    /// The host's environment without its own settings (`CONDUIT_*`: the shared key among
    /// them), with the options' entries on top: a child gets only what it is given.
    let environment: [String: String]

    init(_ options: ProcessOptions) throws {
        let inherited = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CONDUIT_") }
        let environment = inherited.merging(options.environment) { $1 }
        let workingDirectory = options.workingDirectory.map { URL(fileURLWithPath: $0, isDirectory: true) }
        // Unchecked, `check` passed and the start failed naming the program, without a location.
        if let workingDirectory, !Self.isDirectory(workingDirectory.path) {
            throw ChildCommandError(description: "'workingDirectory' \(workingDirectory.path) is not a directory")
        }
        let program = options.command[0]
        if program.contains("/") {
            executable = URL(fileURLWithPath: program, relativeTo: workingDirectory).absoluteURL
            // Unchecked, `check` passed and every start failed (the route went down at start-up).
            guard Self.isExecutableFile(executable.path) else {
                throw ChildCommandError(description: "'\(program)' is not an executable file (\(executable.path))")
            }
        } else {
            executable = try Self.lookUp(program, path: environment["PATH"] ?? "/usr/bin:/bin")
        }
        arguments = Array(options.command.dropFirst())
        self.workingDirectory = workingDirectory
        self.environment = environment
    }

    private static func lookUp(_ program: String, path: String) throws -> URL {
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appending(path: program)
            if isExecutableFile(candidate.path) { return candidate }
        }
        throw ChildCommandError(description: "'\(program)' is not an executable in PATH (\(path))")
    }

    /// Executable and not a directory (which is "executable" as a search permission).
    private static func isExecutableFile(_ path: String) -> Bool {
        FileManager.default.isExecutableFile(atPath: path) && !isDirectory(path)
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}

struct ChildCommandError: Error, CustomStringConvertible {
    let description: String
}
