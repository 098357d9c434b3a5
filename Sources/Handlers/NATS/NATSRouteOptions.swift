public import ConduitKit
public import ConduitNATS
import Foundation

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
        try InvalidOption.checkSeconds("timeoutSeconds", timeoutSeconds, maximum: 3600)
        // With a route in place of `{route}`: a subject no route can make valid ("a b") failed
        // every request, after a clean `conduit check`.
        do {
            try NATSClient.validate(subject: subject.replacingOccurrences(of: "{route}", with: "route"), publishing: true)
        } catch {
            throw InvalidOption("subject", "is not a NATS subject a request can go to (tokens of printable characters without blanks, between single dots; no * or > alone): \(subject)")
        }
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
