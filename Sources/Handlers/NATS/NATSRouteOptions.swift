public import ConduitKit
public import ConduitNATS

/// The options of a `nats` route (SPEC §10).
public struct NATSRouteOptions: HandlerOptions {
    /// `nats://[user:password@|token@]host[:port]` or `tls://…`.
    public var url = "nats://127.0.0.1:4222"
    /// The NATS subject a request goes to; `{route}` is replaced by the request's route.
    public var subject = "{route}"
    /// How long a worker has to answer before the client gets `UnavailableError`.
    public var timeoutSeconds = 10.0
    /// Credentials, when not in the URL.
    public var user: String?
    public var password: String?
    public var token: String?
    /// PEM file of the CA that signed the NATS server's certificate (for `tls://`).
    public var caFile: String?

    public init() {}

    public func validate() throws(InvalidOption) {
        guard timeoutSeconds > 0, timeoutSeconds <= 3600 else { throw InvalidOption("timeoutSeconds", "must be above 0 and at most 3600") }
        do {
            _ = try clientOptions(name: "check")
        } catch {
            throw InvalidOption("url", "is not usable: \(error.description)")
        }
    }

    /// The client options these route options describe.
    public func clientOptions(name: String) throws(NATSError) -> NATSClientOptions {
        var options = try NATSClientOptions(url: url, name: name)
        if let user { options.user = user }
        if let password { options.password = password }
        if let token { options.token = token }
        options.caFile = caFile
        return options
    }
}
