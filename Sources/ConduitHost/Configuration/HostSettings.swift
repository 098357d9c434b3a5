/// The host's flat settings (the `server:` and `limits:` sections of the YAML file).
/// Every one can be overridden by an environment variable (`CONDUIT_PORT`, …).
public struct HostSettings: Sendable, Equatable {
    /// What happens when a slow reader's outbound queue is full (SPEC §3 backpressure).
    public enum OutboundPolicy: String, Sendable, CaseIterable {
        /// Drop the oldest queued message and count it.
        case dropOldest = "drop-oldest"
        /// Close the socket with 1008.
        case close
    }

    public var host = "127.0.0.1"
    /// 0: an ephemeral port.
    public var port = 0
    /// 0: an ephemeral port.
    public var ipcPort = 0
    /// Empty or shorter than 8 bytes: a random key is generated at start.
    public var sharedKey = ""
    /// Origins accepted besides the defaults (none sent, `null`, localhost/127.0.0.1/[::1]).
    public var allowedOrigins: [String] = []
    /// Largest WebSocket frame and largest whole (defragmented) message accepted.
    public var maxMessageBytes = 1 << 20
    /// Cap on the chunks queued per connection for one large request.
    public var chunkQueueBytes = 16 << 20
    /// Pushes kept per client id while it has no socket; the oldest is dropped past it.
    public var pushBufferMessages = 4096
    /// Messages queued per connection while the socket can't take more.
    public var outboundQueueMessages = 4096
    public var outboundPolicy = OutboundPolicy.dropOldest
    /// A connection that has not completed its handshake by then is dropped.
    public var handshakeTimeoutSeconds = 10.0
    /// How long an id's streams outlive its socket (UDP reads, AI sessions).
    public var clientGraceSeconds = 30.0
    /// How long a route invoked over IPC may take to reply before it is answered `TimeoutError` (504).
    public var ipcReplyTimeoutSeconds = 60.0
    /// Where the runtime file is written; empty: `$TMPDIR/conduit-<pid>.json`.
    public var runtimeFile = ""

    public init() {}
}
