import ConduitKit
public import ConduitNATS

/// The options of a `nats` route (SPEC §10).
public struct NATSRouteOptions: Decodable, Sendable {
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

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownOptions(CodingKeys.self)
        let options = try decoder.container(keyedBy: CodingKeys.self)
        url = try options.decodeIfPresent(String.self, forKey: .url) ?? url
        subject = try options.decodeIfPresent(String.self, forKey: .subject) ?? subject
        timeoutSeconds = try options.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? timeoutSeconds
        user = try options.decodeIfPresent(String.self, forKey: .user)
        password = try options.decodeIfPresent(String.self, forKey: .password)
        token = try options.decodeIfPresent(String.self, forKey: .token)
        caFile = try options.decodeIfPresent(String.self, forKey: .caFile)
        guard timeoutSeconds > 0, timeoutSeconds <= 3600 else {
            throw DecodingError.dataCorruptedError(forKey: .timeoutSeconds, in: options, debugDescription: "timeoutSeconds must be above 0 and at most 3600")
        }
        do {
            _ = try clientOptions(name: "check")
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .url, in: options, debugDescription: error.description)
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

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case url, subject, timeoutSeconds, user, password, token, caFile
    }
}
