import ArgumentParser
import ConduitHost
import Foundation
import NIOCore
import NIOHTTP1

/// Finds a running host through its runtime file (SPEC §6) and calls one control route.
struct RunningHostOptions: ParsableArguments {
    @Option(help: "The host's runtime file (default: the newest conduit-*.json in $TMPDIR, else /tmp).")
    var runtimeFile: String?

    /// Calls `route` on the host's IPC port and prints the JSON answer; exits 1 on an error.
    func call(_ route: String) async throws {
        let path = try runtimeFile ?? Self.newestRuntimeFile()
        let runtime: RuntimeFile
        do {
            runtime = try RuntimeFile.read(from: path)
        } catch {
            printError("conduit: can't read the runtime file \(path): \(error)")
            throw ExitCode(1)
        }
        guard let ipcPort = runtime.ipcPort else {
            printError("conduit: the runtime file \(path) names no IPC port")
            throw ExitCode(1)
        }
        let response: IPCClient.Response
        do {
            response = try await IPCClient(port: ipcPort, key: runtime.sharedKey).request(.POST, "/" + route)
        } catch {
            printError("conduit: the host of \(path) does not answer on IPC port \(ipcPort) (pid \(runtime.pid)): \(error)")
            throw ExitCode(1)
        }
        let text = String(buffer: response.body)
        guard response.status == .ok else {
            printError("conduit: \(response.status.code) \(text)")
            throw ExitCode(1)
        }
        print(text)
    }

    /// The most recently written `conduit-*.json` in $TMPDIR and /tmp.
    static func newestRuntimeFile() throws -> String {
        let directories = Set([ProcessInfo.processInfo.environment["TMPDIR"], "/tmp"].compactMap { $0 })
        let candidates = directories.flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasPrefix("conduit-") && $0.hasSuffix(".json") }
                .map { (directory as NSString).appendingPathComponent($0) }
        }
        let dated = candidates.compactMap { path in
            (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date).map { (path, $0) }
        }
        guard let newest = dated.max(by: { $0.1 < $1.1 }) else {
            printError("conduit: no running host found (no conduit-*.json in \(directories.sorted().joined(separator: " or "))); pass --runtime-file")
            throw ExitCode(1)
        }
        return newest.0
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a running host's status: {port, isActive, sharedKey}.")
    @OptionGroup var host: RunningHostOptions
    func run() async throws { try await host.call("internal.conduit.status") }
}

struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a running host's socket server: every socket is closed (1001), pushes are buffered per id."
    )
    @OptionGroup var host: RunningHostOptions
    func run() async throws { try await host.call("internal.conduit.stop") }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a paused host's socket server again (a new ephemeral port unless one is configured)."
    )
    @OptionGroup var host: RunningHostOptions
    func run() async throws { try await host.call("internal.conduit.start") }
}
