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

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
