import ConduitWire

/// Why a client call failed on this side (not an error reply from the host: that is a
/// `ConduitReplyError`). A struct with an opaque code, so codes can be added.
public struct ConduitClientError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The socket is not open and there is no IPC port to fall back to.
        public static let notConnected = Code("not-connected")
        /// `close()` was called.
        public static let closed = Code("closed")
        /// No reply within the request's timeout.
        public static let timedOut = Code("timed-out")
        /// The socket could not be opened (refused, wrong key, host paused).
        public static let connectFailed = Code("connect-failed")
        /// Every reconnect attempt failed.
        public static let reconnectFailed = Code("reconnect-failed")
        /// The message can't be sent as given (no route, a header over the limits).
        public static let invalidMessage = Code("invalid-message")
        /// The host sent something that is not a Conduit message (text frame, bad framing).
        public static let protocolError = Code("protocol-error")
        /// The open socket failed under the client (reset by the host or the network, a read
        /// or write error): it is closed, and the client reconnects as after any close.
        public static let socketFailed = Code("socket-failed")
        /// With `resume`: the host sent a position past the next one that no greeting counted
        /// lost. Nothing is delivered in its place; the socket or events stream is given up and
        /// the client resumes from the last position it received.
        public static let positionSkipped = Code("position")
        /// The IPC listener did not answer, or answered something unexpected.
        public static let ipcFailed = Code("ipc-failed")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// A message from the host, on the socket or the fallback stream, that does not decode.
    static func undecodable(_ error: WireError) -> ConduitClientError {
        ConduitClientError(.protocolError, "a message from the host can't be read: \(error)")
    }
}
