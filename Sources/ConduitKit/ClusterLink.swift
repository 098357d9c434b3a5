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
    /// Delivers `message` to `client` on the host that holds it. Throws `NotFoundError` when
    /// no host does, `UnavailableError` when the holder can't take it or the link is down.
    func relay(_ message: Message, to client: ClientID) async throws(ConduitError)
    /// The link's state and counters, for `internal.conduit.diagnostics`.
    var diagnostics: [String: DiagnosticValue] { get }
}

/// Makes the link from the settings, the host's push sink (where relays from other hosts are
/// delivered) and its event loops. The host's executable supplies it (the `conduit` command
/// links NATS).
public typealias ClusterLinkFactory = @Sendable (ClusterSettings, _ pushes: any PushSink, _ group: any EventLoopGroup) throws -> any ClusterLink
