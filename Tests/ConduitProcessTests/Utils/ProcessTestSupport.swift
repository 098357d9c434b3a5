import ConduitEcho
import ConduitHost
import ConduitKit
import ConduitProcess
import Foundation
import Logging
import NIOConcurrencyHelpers

extension HandlerCatalog {
    static let processTests = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(ProcessHandler.self, name: "process"),
    ])
}

enum Repository {
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .path

    /// A table with `echo`, `example.*` (handlers/example.py, run from the repository root)
    /// and `fixture.*` (the misbehaving child) with `fixtureOptions` added to its options;
    /// `underShell`: the child run by a `sh -c` wrapper (the handler is then its child).
    static func yaml(fixtureOptions: String = "", underShell: Bool = false) -> String {
        let fixture = "\(root)/Tests/ConduitProcessTests/Fixtures/misbehaving.py"
        let command = underShell ? "[sh, -c, \"python3 \(fixture); exit $?\"]" : "[python3, \(fixture)]"
        return """
        routes:
          - route: echo
            handler: echo
          - route: example.*
            handler: process
            options:
              command: [python3, handlers/example.py]
              workingDirectory: \(root)
          - route: fixture.*
            handler: process
            options:
              command: \(command)
              environment: {PYTHONPATH: \(root)/handlers}
              restartDelaySeconds: 0.05
        \(fixtureOptions.split(separator: "\n").map { "      \($0)" }.joined(separator: "\n"))
        """
    }
}

/// Keeps every log record, so a test can wait for one.
final class CapturedLogs: Sendable {
    struct Record: Sendable {
        let message: String
        let metadata: [String: String]
    }

    private let records = NIOLockedValueBox<[Record]>([])

    var all: [Record] { records.withLockedValue { $0 } }

    var logger: Logger {
        Logger(label: "conduit.test") { _ in Handler(sink: self) }
    }

    fileprivate func append(_ record: Record) {
        records.withLockedValue { $0.append(record) }
    }

    private struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append(Record(message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}
