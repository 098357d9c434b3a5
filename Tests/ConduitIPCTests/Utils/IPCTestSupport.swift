import ConduitClient
import ConduitEcho
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import NIOHTTP1

extension HandlerCatalog {
    static let ipcTests = HandlerCatalog([
        HandlerKind(EchoHandler.self, name: "echo"),
        HandlerKind(PartsHandler.self, name: "parts"),
        HandlerKind(FloodHandler.self, name: "flood"),
        HandlerKind(LatePartsHandler.self, name: "late-parts"),
        HandlerKind(SilentHandler.self, name: "silent"),
        HandlerKind(StatefulHandler.self, name: "stateful"),
        HandlerKind(CountingHandler.self, name: "counting"),
        HandlerKind(HangingHandler.self, name: "hanging"),
        HandlerKind(GatedHandler.self, name: "gated"),
        HandlerKind(WideReplyHandler.self, name: "wide"),
        DispatchTally.kind,
    ])
}

extension TestHost {
    var ipcPort: Int { endpoints.ipcPort! }

    /// An IPC client with `key` (default: the host's key).
    func ipc(key: String? = nil) -> IPCClient {
        IPCClient(port: ipcPort, key: key ?? sharedKey)
    }

    func ipcWithoutKey() -> IPCClient {
        IPCClient(port: ipcPort, key: nil)
    }

    /// A table whose handlers start and stop within `handlerStartStopSeconds: 600`.
    static let patientEchoTable = "limits:\n  handlerStartStopSeconds: 600\nroutes:\n  - route: echo\n    handler: echo\n"

    /// Holds the control plane's queue (a host run with `patientEchoTable`): a reload whose new
    /// handler, `name`, starts only once `HangingHandler.open(gate)`. Returns the reload's
    /// connection; its answer comes after that.
    func holdControlQueue(name: String, gate: String) async throws -> RawTCPClient {
        let gated = Self.patientEchoTable + "  - route: gated-start\n    handler: hanging\n    options: {name: \(name), startsWhenOpened: \(gate)}\n"
        try gated.write(toFile: configurationFile, atomically: true, encoding: .utf8)
        let reload = try await RawTCPClient.connect(port: ipcPort)
        try await reload.send(Self.controlRequest("reload", key: sharedKey))
        // This test's own instance: other suites' hanging handlers run beside it.
        try await waitUntil { HangingHandler.isRunning(name) }
        return reload
    }

    /// A POST of control route `route` (with its query) showing `key`.
    static func controlRequest(_ route: String, key: String, closing: Bool = false) -> String {
        "POST /internal.conduit.\(route) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nContent-Length: 0\r\n\(closing ? "Connection: close\r\n" : "")\r\n"
    }
}

/// The `data` of a `{"data":…}` answer.
struct DataEnvelope<Value: Decodable>: Decodable {
    let data: Value
}

struct ErrorEnvelope: Decodable {
    struct Err: Decodable {
        let type: String
        let message: String
    }
    let err: Err
}

struct StatusBody: Decodable, Equatable {
    let port: Int?
    let isActive: Bool
    let sharedKey: String
}

extension IPCClient.Response {
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(body.readableBytesView))
    }

    var text: String { String(buffer: body) }
}
