import ConduitWire

/// What a new socket brings while the fallback stream before it is still being read: held
/// until that stream ends, so pushes reach the handler in the order they were made. Bounded
/// in bytes: past the bound the socket stops reading until they are released (what the host
/// sends meanwhile waits on its side, under its own bounds), so a handler slow to take the
/// stream's messages does not make the client buffer a fast socket without end.
struct HeldArrivals: Sendable {
    static let maxBytes = 8 << 20

    private var arrivals: [Arrival] = []
    private var bytes = 0
    /// The socket that stopped reading, to read again once they are released.
    private var paused: WebSocketConnection?

    /// Holds `arrival`; returns `socket` when it must stop reading now. A socket that comes
    /// after the paused one closed (the stream still read) is paused in turn: only the first
    /// was, and the next read on into memory without end.
    mutating func hold(_ arrival: Arrival, from socket: WebSocketConnection?) -> WebSocketConnection? {
        arrivals.append(arrival)
        switch arrival {
        case .message(let message, _): bytes += message.encodedSize
        // What is kept of a dropped message: its last part's headers.
        case .dropped(let lastPart, _): bytes += Message(headers: lastPart).encodedSize
        }
        guard bytes > Self.maxBytes, let socket, paused !== socket else { return nil }
        paused = socket
        return socket
    }

    /// Everything held, removed, and the socket to read again, if one stopped.
    mutating func release() -> (arrivals: [Arrival], paused: WebSocketConnection?) {
        defer { self = HeldArrivals() }
        return (arrivals, paused)
    }
}
