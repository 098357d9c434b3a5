import ArgumentParser
import ConduitClient
import ConduitHost
import Foundation
import NIOCore
import NIOHTTP1

/// Finds a running host through its runtime file (SPEC §6) and calls one control route.
struct RunningHostOptions: ParsableArguments {
    @Option(help: "The host's runtime file (default: the newest conduit-*.json of a running host in $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp).")
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
        guard (1...65_535).contains(ipcPort) else {
            printError("conduit: the runtime file \(path) names IPC port \(ipcPort), which is not a port")
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

    /// The newest runtime file (the client library's discovery).
    static func newestRuntimeFile() throws -> String {
        do {
            return try HostAddress.newestRuntimeFile()
        } catch let error as ConduitClientError {
            printError("conduit: \(error.message); pass --runtime-file")
            throw ExitCode(1)
        }
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
