import NIOCore

/// One server the client may connect to: the configured one, or one its cluster announced.
struct ServerAddress: Sendable, Hashable, CustomStringConvertible {
    let host: String
    let port: Int

    /// `host:port` or `[v6]:port`, as `connect_urls` gives them; nil when malformed.
    init?(announced text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        self.host = String(host)
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// The name its certificate is checked against, sent as SNI: its host when that is a name;
    /// for an address announced as an IP (nats-server announces IPs), the configured server's
    /// name, as other NATS clients do (checked by IP, a certificate for the cluster's name
    /// failed every failover); nil for an IP with no name to go by.
    func tlsName(configured: String) -> String? {
        guard Self.isIPAddress(host) else { return host }
        return Self.isIPAddress(configured) ? nil : configured
    }

    /// An IPv4 or IPv6 address, not a name (`3nats.example.com` is a name).
    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
