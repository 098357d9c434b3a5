import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Synchronization
import Testing

/// The example workers of docs/nats.md, the Python one (handlers/nats_worker.py, nats-py)
/// and the Swift one (conduit-nats-worker), serving one `work.*` route together.
@Suite(.serialized) struct ExampleWorkerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A worker process, killed when the test is over.
    final class Worker: Sendable {
        let process: Process
        private let output = Mutex("")

        init(_ command: [String]) throws {
            process = Process()
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
            process.currentDirectoryURL = URL(fileURLWithPath: ExampleWorkerTests.root)
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let text = String(decoding: handle.availableData, as: UTF8.self)
                self?.output.withLock { $0 += text }
            }
            try process.run()
        }

        func waitUntilReady() async throws {
            do {
                try await waitUntil(timeout: .seconds(60)) { self.output.withLock { $0.contains("ready") } }
            } catch {
                Issue.record("the worker never said ready; it printed: \(output.withLock { $0 })")
                throw error
            }
        }

        /// SIGTERM, then SIGKILL if it is still there after 3 s: a test never leaves one behind.
        /// The wait is on a thread of its own, not on the cooperative pool the tests share.
        func stop() {
            guard process.isRunning else { return }
            process.terminate()
            Thread { [process] in
                let deadline = Date().addingTimeInterval(3)
                while process.isRunning, Date() < deadline { usleep(20_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }.start()
        }

        deinit { stop() }
    }

    /// A python3 that has nats-py (scripts/nats-python.sh installs it if needed). Off the
    /// cooperative pool: an install takes seconds, and the pool has one thread a core.
    static func pythonWithNATS() async throws -> String {
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/bash")
        script.arguments = ["\(root)/scripts/nats-python.sh"]
        let pipe = Pipe()
        script.standardOutput = pipe
        try script.run()
        let path = await offThePool { [script] in
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            script.waitUntilExit()
            return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard script.terminationStatus == 0, !path.isEmpty else { throw TestClientError.missingTool("python3 with nats-py (scripts/nats-python.sh)") }
        return path
    }

    /// The Swift worker, built beside the test bundle.
    static func swiftWorker() throws -> String {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [directory, directory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("conduit-nats-worker").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw TestClientError.missingTool("conduit-nats-worker (swift build --build-tests builds it)")
    }

    @Test func pythonAndSwiftWorkersShareARouteAndPush() async throws {
        try await NATSServerProcess.run { server in
            let python = try Worker([try await Self.pythonWithNATS(), "handlers/nats_worker.py", "--url", server.url, "--subject", "work.>", "--queue", "workers", "--name", "py-1"])
            let swift = try Worker([try Self.swiftWorker(), "--url", server.url, "--subject", "work.>", "--queue", "workers", "--name", "swift-1"])
            defer {
                python.stop()
                swift.stop()
            }
            try await python.waitUntilReady()
            try await swift.waitUntilReady()
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests) { host in
                try await NATSRouteTests.routeIsUp(host)
                let client = try await host.connect(client: "carol")
                var answeredBy: Set<String> = []
                for n in 0..<200 where answeredBy.count < 2 {
                    let reply = try await client.request(Message(headers: ["route": "work.upper", "token": "u\(n)"], payload: ByteBuffer(string: "abc")))
                    #expect(String(buffer: reply.payload) == "ABC", "\(reply.headers)")
                    if let worker = reply.headers["worker"] { answeredBy.insert(worker) }
                }
                #expect(answeredBy == ["py-1", "swift-1"])

                // Each worker pushes to the asking client before it answers.
                var pushedBy: Set<String> = []
                for n in 0..<200 where pushedBy.count < 2 {
                    try await client.send(Message(headers: ["route": "work.echo", "token": "p\(n)", "push": "yes"], payload: ByteBuffer(string: "x")))
                    let push = try await client.nextMessage(route: "work.progress")
                    #expect(String(buffer: push.payload) == "working on p\(n)")
                    if let worker = push.headers["worker"] { pushedBy.insert(worker) }
                    let reply = try await client.nextMessage(route: "work.echo")
                    #expect(reply.headers["token"] == "p\(n)")
                }
                #expect(pushedBy == ["py-1", "swift-1"])
            }
        }
    }

    /// The Swift worker upper-cased a payload as a string: bytes that are not UTF-8 became
    /// U+FFFD, and some letters grew ("ŉ" to "ʼN"), so the answer could pass `max_payload` and
    /// was dropped unsaid. It changes ASCII letters alone now, as the Python worker does.
    @Test func theSwiftWorkerUpperCasesLettersAndKeepsEveryOtherByte() async throws {
        try await NATSServerProcess.run { server in
            let swift = try Worker([try Self.swiftWorker(), "--url", server.url, "--subject", "work.>", "--queue", "workers", "--name", "swift-1"])
            defer { swift.stop() }
            try await swift.waitUntilReady()
            try await TestHost.run(yaml: NATSRouteTests.yaml(server), catalog: .natsTests) { host in
                try await NATSRouteTests.routeIsUp(host)
                let client = try await host.connect(client: "bytes")
                let sent: [UInt8] = [0xC3, 0xA9, UInt8(ascii: "a"), 0x00, 0xFF, 0xC5, 0x89, UInt8(ascii: "Z")]
                let reply = try await client.request(Message(headers: ["route": "work.upper", "token": "b"], payload: ByteBuffer(bytes: sent)))
                #expect(Array(reply.payload.readableBytesView) == [0xC3, 0xA9, UInt8(ascii: "A"), 0x00, 0xFF, 0xC5, 0x89, UInt8(ascii: "Z")], "\(reply.headers)")
            }
        }
    }
}
