/// The server's `INFO`: what it accepts from this connection.
public struct NATSServerInfo: Sendable, Decodable, Equatable {
    public var serverID: String
    public var version: String
    /// The largest message (headers and payload) the server takes.
    public var maxPayload: Int
    public var headers: Bool
    public var tlsRequired: Bool
    public var authRequired: Bool
    /// The other servers of the server's cluster that clients may connect to (`host:port`).
    public var connectURLs: [String]

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id", version, maxPayload = "max_payload", headers
        case tlsRequired = "tls_required", authRequired = "auth_required", connectURLs = "connect_urls"
    }

    public init(from decoder: any Decoder) throws {
        let info = try decoder.container(keyedBy: CodingKeys.self)
        serverID = try info.decodeIfPresent(String.self, forKey: .serverID) ?? ""
        version = try info.decodeIfPresent(String.self, forKey: .version) ?? ""
        maxPayload = try info.decodeIfPresent(Int.self, forKey: .maxPayload) ?? 1 << 20
        headers = try info.decodeIfPresent(Bool.self, forKey: .headers) ?? false
        tlsRequired = try info.decodeIfPresent(Bool.self, forKey: .tlsRequired) ?? false
        authRequired = try info.decodeIfPresent(Bool.self, forKey: .authRequired) ?? false
        connectURLs = try info.decodeIfPresent([String].self, forKey: .connectURLs) ?? []
    }
}
