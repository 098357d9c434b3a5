public import ConduitWire
import Foundation
import NIOCore

/// An error reply from the host (SPEC §3), thrown by `request`: header `error: <type>`,
/// payload `{"err":{"type":…,"message":…}}`.
public struct ConduitReplyError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `NotFoundError`, `BadRequestError`, `PayloadTooLargeError`, … (handlers may add more).
    public let type: String
    public let message: String
    /// The reply's headers (route, token, error, …).
    public let headers: Headers

    public var description: String { "\(type): \(message)" }

    /// The error a reply carries, or nil when it is not an error reply.
    init?(reply: Message) {
        guard let type = reply.headers[HeaderName.error] else { return nil }
        let body = try? JSONDecoder().decode(Envelope.self, from: Data(reply.payload.readableBytesView))
        self.type = body?.err.type ?? type
        self.message = body?.err.message ?? String(buffer: reply.payload)
        self.headers = reply.headers
    }

    private struct Envelope: Decodable {
        struct Err: Decodable {
            let type: String
            let message: String
        }
        let err: Err
    }
}
