public import ConduitKit

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
    /// Cap on the chunks queued per connection for one large request, headers included.
    public var chunkQueueBytes = 16 << 20
    /// Bytes of pushes kept per client id while it has no socket (docs/memory.md).
    public var pushBufferBytes = 8 << 20
    /// Pushes kept per client id while it has no socket: a second bound besides the bytes.
    public var pushBufferMessages = 4096
    /// Bytes queued per socket while it can't take more (a slow reader).
    public var outboundQueueBytes = 8 << 20
    /// Messages queued per socket: a second bound besides the bytes.
    public var outboundQueueMessages = 4096
    /// Per resuming id: bytes of messages sent and not yet acknowledged, kept for a replay
    /// after a reconnect (SPEC §9).
    public var resumeWindowBytes = 4 << 20
    /// All buffers of the host together: chunk queues, outbound queues, push buffers.
    public var hostBufferBytes = 256 << 20
    /// A client with more bytes queued than this is congested: byte streams stop reading.
    public var congestionHighWaterBytes = 1 << 20
    /// A congested client is writable again once its queued bytes fall under this.
    public var congestionLowWaterBytes = 256 << 10
    public var outboundPolicy = OutboundPolicy.dropOldest
    /// A connection that has not completed its handshake by then is dropped.
    public var handshakeTimeoutSeconds = 10.0
    /// Connections waiting for their handshake at once; past it the oldest is closed.
    public var maxPendingHandshakes = 1024
    /// Bytes a connection may send before its upgrade (its request head); past them it is
    /// answered 431 and closed.
    public var maxHandshakeBytes = 16 << 10
    /// A WebSocket message must arrive whole within this from its first byte, else its
    /// connection is closed (1008): begun and then trickled, it held its bytes of the budget for
    /// as long as it trickled.
    public var messageArrivalTimeoutSeconds = 30.0
    /// A socket the host closes (a stop, a shutdown, a breach) is cut this long after its close
    /// frame when the client has not answered it: a client that reads nothing holds the stop
    /// or the shutdown no longer.
    public var closeTimeoutSeconds = 5.0
    /// How long an id's streams outlive its socket (UDP reads, AI sessions).
    public var clientGraceSeconds = 30.0
    /// Ids the host holds at once; past it an IPC invocation naming a new id is answered 503.
    public var maxClients = 65_536
    /// A request answered from a task (`respond`, async handlers) that takes longer is
    /// answered `TimeoutError`, over the WebSocket as over IPC, unless the handler sets its own.
    public var requestTimeoutSeconds = 60.0
    /// Per connection: requests answered from a task and still running; past it new ones are
    /// answered `UnavailableError`.
    public var maxRequestsInFlight = 1024
    /// How long a route invoked over IPC may take to reply before it is answered `TimeoutError` (504).
    public var ipcReplyTimeoutSeconds = 60.0
    /// IPC connections open at once; past it a new one is closed at once.
    public var ipcMaxConnections = 256
    /// An IPC connection waiting this long for a complete request head (idle keep-alive, or a
    /// head trickled in) is closed.
    public var ipcIdleTimeoutSeconds = 30.0
    /// A request body must arrive whole within this after its head.
    public var ipcBodyTimeoutSeconds = 30.0
    /// A handler's `start()` or `stop()` taking longer is given up on: a start fails the
    /// start-up or the reload, a stop is left to finish in the background.
    public var handlerStartStopSeconds = 30.0
    /// Where the runtime file is written; empty: `$TMPDIR/conduit-<pid>.json`.
    public var runtimeFile = ""
    /// Hosts sharing client ids over NATS (`server.cluster`); nil: this host alone.
    public var cluster: ClusterSettings?

    public init() {}
}
