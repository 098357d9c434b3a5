public import ConduitWire

/// What a `Conduit` reports on its event streams (`Conduit.events()`), like the seed's DOM
/// events.
public enum ConduitEvent: Sendable {
    /// The socket is open (after `connect()`, and after every successful reconnect).
    case open
    /// A message from the host (pushes and replies that no `request` is waiting for), with
    /// parts joined. It goes to the `receive` handler too.
    case message(Message)
    /// Something went wrong that no call can report: an undecodable message, a protocol
    /// error, a reconnect that gave up.
    case error(ConduitClientError)
    /// The socket closed. `code` is the close code the host sent (nil: none, the connection
    /// just ended); `willReconnect` says whether the client is trying to get it back.
    case close(code: UInt16?, reason: String, willReconnect: Bool)
    /// A reconnect succeeded (it follows `open`): reissue subscriptions such as `udp.readStart`.
    case reopen
    /// Resume (SPEC §9): the host no longer held this client's state (it restarted, or the id
    /// expired): what was sent meanwhile can't be known. Positions start again.
    case resumeReset
    /// Resume: `count` messages were released by the host (its window was full) before this
    /// client received them.
    case lost(count: Int)
    /// This stream was not read fast enough: `count` events were left out of it, to keep what it
    /// holds under its bound (`Conduit.events(maxBufferedBytes:)`). Messages among them still
    /// went to the `receive` handler.
    case eventsLeftOut(count: Int)
}
