import ConduitWire

/// Everything a `Conduit` changes over its life, kept under one lock.
struct ConnectionState: Sendable {
    enum Phase: Sendable {
        /// Not connected yet, or the socket is down (a reconnect may be running).
        case down
        case open(WebSocketConnection)
        /// `close()` was called: no more sockets.
        case closed
    }

    var phase = Phase.down
    /// The last port the socket server was found on.
    var port: Int?
    /// Bumped for every socket, so a late close of an old one changes nothing.
    var generation = 0
    var receiver: (@Sendable (Message) -> Void)?
    var subscribers: [Int: EventsSubscriber] = [:]
    var nextSubscriber = 0
    var reconnecting: Task<Void, any Error>?
    /// When the current socket opened, and how many sockets in a row closed soon after they
    /// opened: those count as failed attempts, so a host that accepts and then closes at once
    /// is not reconnected to as fast as the round trip allows.
    var openedAt: ContinuousClock.Instant?
    var quickCloses = 0
    /// The host closed the socket as replaced by a newer one of the id: nothing reconnects by
    /// itself (a send, an IPC fallback) until `connect()` or `reconnect()` is called; coming
    /// back would replace the newer one, which would then do the same.
    var replaced = false
    /// Which reconnect `reconnecting` is: a finished loop clears only its own.
    var reconnectSerial = 0
    /// The one connection attempt in flight, which every caller joins (`connect()`, a
    /// reconnect, a send that starts one); `attemptSerial` names it.
    var attempt: Task<Void, any Error>?
    var attemptSerial = 0
    /// Reading pushes over IPC while the socket is down; `fallbackSerial` names the current one.
    var fallback: FallbackReceiver?
    var fallbackSerial = 0
    /// Messages from a new socket, held until the fallback stream before it has been read to
    /// its end, so pushes reach the handler in the order they were made.
    var held = HeldArrivals()
    /// Resume: the next client position to write on the open socket, from its greeting on
    /// (nil before it: what is numbered meanwhile waits in the kept log).
    var writeCursor: UInt64?
    /// Resume: a drain of the kept log onto the socket is queued or running.
    var isDraining = false
    /// Resume: what the current events stream stated, settled when it ends.
    var streamStated: StatedPosition?

    var connection: WebSocketConnection? {
        if case .open(let connection) = phase { return connection }
        return nil
    }

    var isClosed: Bool {
        if case .closed = phase { return true }
        return false
    }

    func emit(_ event: ConduitEvent) {
        for subscriber in subscribers.values { subscriber.yield(event) }
    }

    /// Removes every subscriber, for the caller to finish outside the lock (finishing runs
    /// `onTermination`, which takes the lock).
    mutating func takeSubscribers() -> [AsyncStream<ConduitEvent>.Continuation] {
        defer { subscribers.removeAll() }
        return subscribers.values.map(\.continuation)
    }
}
