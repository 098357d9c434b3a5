import ConduitHost
import ConduitTesting
import ConduitWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// SPEC §4: the YAML registry, its errors with file:line:column, env overrides, reload.
@Suite("Configuration")
struct ConfigurationTests {
    private func loadError(_ yaml: String, environment: [String: String] = [:]) -> ConfigurationError? {
        do {
            let configuration = try ConfigurationLoader(environment: environment).load(yaml: yaml, file: "routes.yaml")
            try RouteRegistry.validate(configuration, catalog: .hostTests, group: MultiThreadedEventLoopGroup.singleton)
            return nil
        } catch {
            return error
        }
    }

    /// Foundation's reader named these in words of its own and without where ("error 256",
    /// "isn't in the correct format", "You don't have permission" for a pipe it could read),
    /// and libyaml's reader errors lost their line and column (1:1).
    @Test func aFileThatCantBeUsedIsNamedWithWhereAndWhy() throws {
        let directory = NSTemporaryDirectory() + "conduit-files-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func error(_ name: String, _ bytes: [UInt8]? = nil) -> ConfigurationError? {
            if let bytes { _ = FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data(bytes)) }
            do {
                _ = try ConfigurationLoader(environment: [:]).load(path: "\(directory)/\(name)")
                return nil
            } catch {
                return error
            }
        }
        let notUTF8 = try #require(error("latin1.yaml", Array("routes:\n  - route: caf".utf8) + [0xE9] + Array("\n".utf8)))
        #expect((notUTF8.location.line, notUTF8.location.column, notUTF8.message) == (2, 15, "the file is not UTF-8 here"), "\(notUTF8)")
        let control = try #require(error("control.yaml", Array("routes:\n  - route: a".utf8) + [0x01] + Array("\n".utf8)))
        #expect((control.location.line, control.location.column) == (2, 13) && control.message.contains("control characters"), "\(control)")
        try FileManager.default.createDirectory(atPath: "\(directory)/folder.yaml", withIntermediateDirectories: false)
        #expect(error("folder.yaml")?.message == "the file can't be read: it is a directory")
        #expect(error("missing.yaml")?.message == "the file can't be read: No such file or directory")
        // A reload reads only a regular file: opening a FIFO waits for its writer, and every
        // control call waits behind a reload.
        #expect(mkfifo("\(directory)/pipe.yaml", 0o600) == 0)
        let pipe = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader(environment: [:]).load(path: "\(directory)/pipe.yaml", regularFileOnly: true)
        }
        #expect(pipe?.message.contains("not a regular file") == true, "\(String(describing: pipe))")
        let large = try #require(error("large.yaml", [UInt8](repeating: UInt8(ascii: "#"), count: 16 << 20 + 1)))
        #expect(large.message == "the file can't be read: it is larger than 16 MiB")
    }

    @Test func theEmbeddedDefaultLoadsWithAnEchoRoute() throws {
        let configuration = try ConfigurationLoader(environment: [:]).load(path: nil)
        #expect(configuration.source == ConfigurationLoader.embeddedName)
        #expect(configuration.routes.contains { $0.route == "echo" && $0.handler == "echo" })
        #expect(configuration.settings.host == "127.0.0.1")
    }

    @Test("errors point at the line and column and say what is wrong", arguments: [
        ("routes:\n  - route: echo\n    handler: nope\n", 2, 5, "unknown handler kind 'nope'"),
        ("routes:\n  - route: echo\n    handler: echo\n  - route: echo\n    handler: echo\n", 4, 5, "already defined at line 2"),
        ("server:\n  port: 70000\n", 2, 9, "not a port number"),
        // One place could go to an events stream, which never ends: no request could be answered.
        ("limits:\n  ipcMaxConnections: 1\n", 2, 22, "2"),
        ("server:\n  prot: 1\n", 2, 3, "unknown setting 'prot'"),
        // `cluster` is a setting of `server` too: the list of known ones left it out.
        ("server:\n  prot: 1\n", 2, 3, "'runtimeFile', 'cluster'"),
        ("limits:\n  outboundPolicy: maybe\n", 2, 19, "'drop-oldest' or 'close'"),
        ("routes:\n  - route: a b\n    handler: echo\n", 2, 5, "is not a route"),
        ("routes:\n  - route: internal.x\n    handler: echo\n", 2, 5, "reserved"),
        ("routes:\n  - route: c\n    handler: configured\n    options:\n      greeting: hi\n      repeats: many\n", 6, 16, "option 'repeats'"),
        ("routes:\n  - route: c\n    handler: configured\n    options:\n      greeting: hi\n", 5, 7, "'repeats' is required"),
        ("routes:\n  - route: e\n    handler: echo\n    options:\n      loud: true\n", 5, 13, "takes no options"),
        ("routes: [\n  - oops\n", 2, 3, "not valid YAML"),
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      stpe: 2\n", 5, 13, "unknown option 'stpe' of route 'd'; known options: 'step', 'label', 'names', 'section'"),
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      step: ten\n", 5, 13, "option 'step' of route 'd': expected a whole number, found 'ten'"),
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      step: 0\n", 5, 13, "option 'step' must be above 0 (route 'd')"),
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      section: {prot: 1}\n", 5, 23, "unknown option 'section.prot'"),
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      section: {port: 70000}\n", 5, 23, "option 'section.port' must be 0…65535"),
        ("surprise: 1\n", 1, 1, "unknown section"),
        // Read as the text "null": `runtimeFile: null` wrote the runtime file, key and all, to ./null.
        ("server:\n  runtimeFile: null\n", 2, 16, "'server.runtimeFile' has no value (null)"),
        // A list was read as its items joined by commas, for any setting: the host listened on it.
        ("server:\n  port: [18931]\n", 2, 9, "'server.port' must be a single value"),
        // Refused only at bind, without a location.
        ("server:\n  host: 'not an address!'\n", 2, 9, "is not an address to listen on"),
        // 0 ns as a timer: every handshake timed out at once.
        ("limits:\n  handshakeTimeoutSeconds: 1e-300\n", 2, 28, "from 0.001"),
        // Blamed at 1:1.
        ("limits:\n  congestionHighWaterBytes: 2048\n  congestionLowWaterBytes: 4096\n", 3, 28, "must be below"),
        // An entry with a path never matched a browser's Origin, and let nobody in without a word.
        ("server:\n  allowedOrigins: [https://app.example/login]\n", 2, 19, "'https://app.example/login' is not an origin"),
        // Digits joined by ':' are base 60 in YAML 1.1; Yams' arithmetic trapped past 64 bits.
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      step: 1:0:0:0:0:0:0:0:0:0:0\n", 5, 13, "out of range"),
        ("routes:\n  - route: c\n    handler: configured\n    options:\n      greeting: hi\n      repeats: 9223372036854775807:0\n", 6, 16, "out of range"),
        // Parts with signs of their own summing to Int.min: Yams trapped negating it (a reload took the host down).
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      step: --1:-9223372036854775748\n", 5, 13, "out of range"),
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      step: -+0:-9223372036854775808\n", 5, 13, "out of range"),
    ])
    func located(yaml: String, line: Int, column: Int, words: String) throws {
        let error = try #require(loadError(yaml))
        #expect(error.location.file == "routes.yaml")
        #expect((error.location.line, error.location.column) == (line, column), "\(error)")
        #expect(error.message.contains(words), "\(error)")
        #expect(error.description.hasPrefix("routes.yaml:\(line):\(column): error: "))
    }

    /// Nine levels of ten aliases each ("billion laughs"): 10^9 nodes once expanded, from a few
    /// lines. `lines` are the anchors, indented under `indent`.
    private static func laughs(indent: String) -> String {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...8 {
            lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]")
        }
        return lines.map { indent + $0 + "\n" }.joined()
    }

    /// Nested aliases hung `check`, a start and a reload: Yams hashed an alias used as a key whole,
    /// and every walk of a route's options visited each expanded node.
    @Test("aliases that expand past any configuration's size are an error, not a hang", arguments: [
        // Past the limit at the tenth alias of `a4` (10 × 11,111 nodes), on its line.
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n      section:\n" + laughs(indent: "        "), 10),
        ("routes:\n  - route: d\n    handler: defaulted\n    options:\n" + laughs(indent: "      ") + "      ? *a8\n      : 1\n", 9),
    ])
    func nestedAliasesAreRefused(yaml: String, line: Int) throws {
        let error = try #require(loadError(yaml))
        #expect(error.message.contains("more than 100000 YAML nodes"), "\(error)")
        #expect(error.location.line == line, "\(error)")
    }

    /// A large file without a single alias was told its aliases were to blame.
    @Test func aLargeFileWithoutAliasesIsNotBlamedOnThem() throws {
        let yaml = "routes:\n" + (0..<20_001).map { "  - route: r\($0)\n    handler: echo\n" }.joined()
        let error = try #require(loadError(yaml))
        #expect(error.message.contains("more than 100000 YAML nodes") && !error.message.contains("alias"), "\(error)")
    }

    @Test func aliasesWithinTheLimitStillWork() throws {
        let yaml = """
            routes:
              - route: d
                handler: defaulted
                options: &shared {step: 3, label: shared}
              - route: e
                handler: defaulted
                options: *shared
            """
        let configuration = try ConfigurationLoader(environment: [:]).load(yaml: yaml, file: "f")
        #expect(configuration.routes.map(\.route) == ["d", "e"])
        #expect(loadError(yaml) == nil)
    }

    @Test func handlerInitErrorsAreReportedAtTheOptions() throws {
        let error = try #require(loadError("routes:\n  - route: c\n    handler: configured\n    options:\n      greeting: hi\n      repeats: 0\n"))
        #expect(error.location.line == 5)
        #expect(error.message.contains("repeats must be positive"))
    }

    @Test func environmentOverridesTheFile() throws {
        let yaml = "server:\n  port: 1234\n  host: 127.0.0.1\nlimits:\n  pushBufferMessages: 5\n"
        let environment = ["CONDUIT_PORT": "4321", "CONDUIT_PUSH_BUFFER_MESSAGES": "9", "CONDUIT_ALLOWED_ORIGINS": "https://a, https://b"]
        let settings = try ConfigurationLoader(environment: environment).load(yaml: yaml, file: "f").settings
        #expect(settings.port == 4321)
        #expect(settings.pushBufferMessages == 9)
        #expect(settings.allowedOrigins == ["https://a", "https://b"])
        let bad = try #require(loadError(yaml, environment: ["CONDUIT_IPC_PORT": "x"]))
        #expect(bad.location.file == "$CONDUIT_IPC_PORT")
        // The low-water mark from the environment was blamed on the file's first line.
        let marks = try #require(loadError(yaml, environment: ["CONDUIT_CONGESTION_LOW_WATER_BYTES": "2000000"]))
        #expect(marks.location.file == "$CONDUIT_CONGESTION_LOW_WATER_BYTES" && marks.message.contains("must be below"), "\(marks)")
    }

    @Test func reloadSwapsTheTableAndKeepsTheOldOneWhenTheNewIsBad() async throws {
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let first = try ConfigurationLoader(environment: [:]).load(yaml: "routes:\n  - route: echo\n    handler: echo\n", file: "a")
        let registry = try RouteRegistry(configuration: first, catalog: .hostTests) { entry in
            .init(route: entry.route, logger: logger, pushes: DiscardingSink(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        }
        let echo = try #require(registry.lookup("echo"))
        let second = try ConfigurationLoader(environment: [:]).load(
            yaml: "routes:\n  - route: echo\n    handler: echo\n  - route: fail.*\n    handler: thrower\n", file: "b"
        )
        try await registry.reload(second, logger: logger)
        #expect(registry.lookup("fail.x") != nil)
        #expect(registry.lookup("echo")?.stats === echo.stats, "unchanged entries keep their handler and counters")
        let broken = try ConfigurationLoader(environment: [:]).load(yaml: "routes:\n  - route: x\n    handler: nope\n", file: "c")
        await #expect(throws: ConfigurationError.self) { try await registry.reload(broken, logger: logger) }
        #expect(registry.lookup("fail.x") != nil, "the old table stays")
    }

    /// A file named by an option whose key ends in `File` that changed on disk makes its route
    /// new at the next reload (a rotated certificate); any other path in the options is data
    /// (a log a handler writes to) and leaves the route as it is.
    @Test func aReloadRebuildsARouteWhoseNamedFileChangedAndOnlyThen() async throws {
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (keyFile, logFile) = (folder.appendingPathComponent("key.pem").path, folder.appendingPathComponent("app.log").path)
        try "one".write(toFile: keyFile, atomically: true, encoding: .utf8)
        try "".write(toFile: logFile, atomically: true, encoding: .utf8)
        let yaml = "routes:\n  - route: c\n    handler: configured\n    options: {greeting: hi, repeats: 1, keyFile: \(keyFile), log: \(logFile)}\n"
        func load() throws -> HostConfiguration { try ConfigurationLoader(environment: [:]).load(yaml: yaml, file: "f") }
        let registry = try RouteRegistry(configuration: try load(), catalog: .hostTests) { entry in
            .init(route: entry.route, logger: logger, pushes: DiscardingSink(), eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        }
        let first = try #require(registry.lookup("c"))
        try "a line the handler logged".write(toFile: logFile, atomically: false, encoding: .utf8)
        try await registry.reload(try load(), logger: logger)
        #expect(registry.lookup("c")?.tasks === first.tasks, "a changed log file is no change of the route")
        try "two".write(toFile: keyFile, atomically: true, encoding: .utf8)
        try await registry.reload(try load(), logger: logger)
        #expect(registry.lookup("c")?.tasks !== first.tasks, "a changed key file makes the route new")
    }
}

import ConduitKit

private struct DiscardingSink: PushSink {
    func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome { .buffered }
    func isConnected(_ client: ClientID) -> Bool { false }
    func isCongested(_ client: ClientID) -> Bool { false }
    func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) { body() }
}

/// `HandlerOptions`: a plain struct's declared defaults hold for every key the YAML leaves out.
@Suite("Handler options")
struct HandlerOptionsTests {
    private func options(_ yaml: String) async throws -> [String: Any] {
        let payload = try await TestHost.run(yaml: "routes:\n  - route: d\n    handler: defaulted\n" + yaml, catalog: .hostTests) { host in
            Data(try await host.connect().request(Message(headers: ["route": "d", "token": "1"])).payload.readableBytesView)
        }
        let json = try JSONSerialization.jsonObject(with: payload) as? [String: Any]
        return try #require(json?["data"] as? [String: Any], "\(String(decoding: payload, as: UTF8.self))")
    }

    @Test func leftOutKeysKeepTheirDeclaredDefaults() async throws {
        let none = try await options("")
        #expect(none["step"] as? Int == 1 && none["label"] == nil && none["names"] as? [String] == ["a"])
        #expect((none["section"] as? [String: Any])?["host"] as? String == "127.0.0.1")
        let some = try await options("    options:\n      label: x\n      section: {port: 80}\n")
        #expect(some["step"] as? Int == 1 && some["label"] as? String == "x")
        let section = some["section"] as? [String: Any]
        #expect(section?["port"] as? Int == 80 && section?["host"] as? String == "127.0.0.1")
    }
}
