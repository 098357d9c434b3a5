import ConduitTesting
import ConduitWire
import Foundation
import NIOCore

extension TLSSession {
    /// `tls.connect` to the handler's echo service, trusting the certificate it announces.
    func connectToEcho() async throws {
        let echo = try await request("\(mount).echoService").data(EchoService.self)
        let connected = try await request(
            "\(mount).connect", ["host": "127.0.0.1", "port": "\(echo.port)"], payload: Array(echo.certificatePEM.utf8)
        ).data(Connected.self)
        try require(connected.verified, "\(mount).connect did not verify the echo service's certificate")
    }

    /// Reads messages until `condition` holds; the end of the TLS connection on the way fails
    /// the measurement.
    func readUnlessEnded(until condition: (TLSSession) -> Bool) async throws {
        try await read { condition($0) || $0.end != nil }
        if let end { throw MeasurementFailure("the TLS connection ended: \(String(buffer: end.payload))") }
    }
}

extension Message {
    /// The `{"data": …}` of a successful reply; an error reply fails the measurement.
    fileprivate func data<Value: Decodable>(_ type: Value.Type) throws -> Value {
        let body = Data(payload.readableBytesView)
        if let error = headers["error"] { throw MeasurementFailure("\(error): \(String(decoding: body, as: UTF8.self))") }
        return try JSONDecoder().decode(Envelope<Value>.self, from: body).data
    }
}

private struct Envelope<Value: Decodable>: Decodable { let data: Value }

/// `tls.echoService`'s answer (the fields used here).
private struct EchoService: Decodable {
    let port: Int
    let certificatePEM: String
}

/// `tls.connect`'s answer (the field used here).
private struct Connected: Decodable {
    let verified: Bool
}
