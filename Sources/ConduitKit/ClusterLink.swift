public import ConduitWire
public import NIOCore

/// `cluster:` in the server section (SPEC §10): the hosts that share client ids meet at
/// `nats`; `name` tells this host apart in their diagnostics.
public struct ClusterSettings: Sendable, Equatable {
    public var nats: String
    public var name: String

    public init(nats: String, name: String) {
        self.nats = nats
        self.name = name
    }
}

/// Other hosts sharing client ids (SPEC §10 "Several hosts"). The host tells the link which
/// ids it holds (their `ClientEvent`s) and hands it every relay (`to`) to an id without a
/// socket here; the link delivers, to this host's clients, what other hosts relay to them.
public protocol ClusterLink: Sendable {
    func start() async throws
    func stop() async
    func clientEvent(_ event: ClientEvent)
    /// Hands `message` to the host that holds `client`. It is sent before this returns, so
    /// relays keep the order they were made in; `completion` gets nil once the holder took it,
    /// `NotFoundError` when no host holds the id, `UnavailableError` when the holder can't
    /// take it or the link is down.
    func relay(_ message: Message, to client: ClientID, completion: @escaping @Sendable (ConduitError?) -> Void)
    /// The link's state and counters, for `internal.conduit.diagnostics`.
    var diagnostics: [String: DiagnosticValue] { get }
}

/// Makes the link from the settings, the host's push sink (where relays from other hosts are
/// delivered) and its event loops. The host's executable supplies it (the `conduit` command
/// links NATS).
public typealias ClusterLinkFactory = @Sendable (ClusterSettings, _ pushes: any PushSink, _ group: any EventLoopGroup) throws -> any ClusterLink
