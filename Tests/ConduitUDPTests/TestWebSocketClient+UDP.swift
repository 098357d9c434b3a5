import ConduitTesting
import ConduitWire
import Foundation
import NIOCore
import Testing

/// `udp.getState`'s JSON, as the tests read it.
struct UDPState: Decodable {
    let address: String?
    let port: Int?
    let remotePort: Int?
    let reading: Bool
    let received: Int
    let pushedLive: Int
    let pushedBuffered: Int
    let pushedDroppingOldest: Int
    let dropped: Int
    let evicted: Int
    let ignored: Int
    let droppedTooLarge: Int
    let droppedByKernel: Int
}

private struct DataEnvelope<Value: Decodable>: Decodable { let data: Value }

extension TestWebSocketClient {
    /// Sends a `udp.*` request that answers with the socket's state, and decodes it.
    func udpState(_ headers: Headers, timeout: TimeAmount = .seconds(10)) async throws -> UDPState {
        let reply = try await request(Message(headers: headers), timeout: timeout)
        #expect(reply.headers["error"] == nil, "\(String(buffer: reply.payload))")
        return try JSONDecoder().decode(DataEnvelope<UDPState>.self, from: Data(reply.payload.readableBytesView)).data
    }

    /// Binds an ephemeral socket on 127.0.0.1, starts reading, and returns its port.
    func bindAndRead() async throws -> Int {
        let bound = try await udpState(["route": "udp.bind", "token": "bind"])
        _ = try await udpState(["route": "udp.readStart", "token": "readStart"])
        return try #require(bound.port)
    }
}
