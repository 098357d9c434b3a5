/// What a `NATSClient` has done since it was made.
public struct NATSStatistics: Sendable, Equatable, Codable {
    public var messagesIn = 0
    public var bytesIn = 0
    public var messagesOut = 0
    public var bytesOut = 0
    /// Connections made after the first one.
    public var reconnects = 0
    public var requestsTimedOut = 0
    public var noResponders = 0
    /// Messages a subscriber's bounded buffer had no room for (a slow consumer).
    public var slowConsumerDrops = 0
    /// Messages dropped because their header block could not be read (a publisher's fault).
    public var malformedMessages = 0

    public init() {}
}

/// Where the connection stands.
public enum NATSConnectionState: String, Sendable, Codable {
    /// Not connected yet, or connecting again after a loss (with backoff).
    case connecting
    case connected
    case closed
}
