/// A loaded configuration: settings and the route table, not yet bound to handlers.
public struct HostConfiguration: Sendable, Equatable {
    public var settings: HostSettings
    public var routes: [RouteEntry]
    /// The file it came from (`<embedded>` for the built-in default).
    public var source: String
    /// Where `server.cluster` is in it, for an error of the cluster link's.
    public var clusterLocation: SourceLocation?

    public init(settings: HostSettings = HostSettings(), routes: [RouteEntry] = [], source: String) {
        self.settings = settings
        self.routes = routes
        self.source = source
    }
}
