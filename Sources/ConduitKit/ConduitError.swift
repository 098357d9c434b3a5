import Foundation
public import NIOCore

/// An error a handler answers a request with (SPEC §3). The host turns it into an error reply:
/// header `error: <type>`, payload `{"err":{"message":…,"type":…}}`.
public struct ConduitError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The error's type name as it travels on the wire. Open: handlers may define their own.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let notFound = Kind("NotFoundError")
        public static let badRequest = Kind("BadRequestError")
        public static let payloadTooLarge = Kind("PayloadTooLargeError")
        public static let forbidden = Kind("ForbiddenError")
        public static let `internal` = Kind("InternalError")
        public static let unavailable = Kind("UnavailableError")
        public static let timeout = Kind("TimeoutError")
        /// The client cancelled the request (`cancel: <token>`, SPEC §8).
        public static let cancelled = Kind("CancelledError")

        /// The types the host itself answers with: the label set of its error metrics (others
        /// count as `other`, so a handler's own types can't multiply series).
        public static let builtIn: [Kind] = [.notFound, .badRequest, .payloadTooLarge, .forbidden, .internal, .unavailable, .timeout, .cancelled]
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func notFound(_ message: String) -> Self { Self(.notFound, message) }
    public static func badRequest(_ message: String) -> Self { Self(.badRequest, message) }
    public static func payloadTooLarge(_ message: String) -> Self { Self(.payloadTooLarge, message) }
    public static func forbidden(_ message: String) -> Self { Self(.forbidden, message) }
    public static func `internal`(_ message: String) -> Self { Self(.internal, message) }
    public static func unavailable(_ message: String) -> Self { Self(.unavailable, message) }
    public static func timeout(_ message: String) -> Self { Self(.timeout, message) }
    public static func cancelled(_ message: String) -> Self { Self(.cancelled, message) }

    public var description: String { "\(kind.name): \(message)" }

    /// The error reply's payload, `{"err":{"message":…,"type":…}}`, keys sorted so clients and
    /// tests can compare it byte for byte.
    public var payload: ByteBuffer {
        let body = ["err": ["message": message, "type": kind.name]]
        return ByteBuffer(bytes: (try? JSONEncoder.conduit.encode(body)) ?? Data())
    }
}
