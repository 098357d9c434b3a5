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
