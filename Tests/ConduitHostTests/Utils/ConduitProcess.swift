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

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = Self.executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    /// Runs to completion and returns the exit code and both outputs.
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ConduitProcess(arguments, environment: environment)
        let status = await child.exit()
        return (status, child.readAll(child.stdout), child.readAll(child.stderr))
    }

    /// The first line on stdout (the announce line of `serve`).
    func firstLine() async throws -> String {
        let handle = stdout.fileHandleForReading
        return try await Task.detached {
            var bytes: [UInt8] = []
            while true {
                let chunk = handle.availableData
                guard !chunk.isEmpty else { throw CocoaError(.fileReadUnknown) }
                bytes += chunk
                if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                    return String(decoding: bytes[..<newline], as: UTF8.self)
                }
            }
        }.value
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    func exit() async -> Int32 {
        await Task.detached { [process] in
            process.waitUntilExit()
            return process.terminationStatus
        }.value
    }

    func standardError() -> String { readAll(stderr) }

    private func readAll(_ pipe: Pipe) -> String {
        String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}
