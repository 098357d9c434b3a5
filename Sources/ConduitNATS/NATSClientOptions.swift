import Foundation

/// How a `NATSClient` connects: server, credentials, TLS, timing and bounds.
public struct NATSClientOptions: Sendable {
    public var host: String
    public var port: Int
    /// TLS is used when the URL says `tls://` or the server requires it.
    public var tls: Bool
    /// PEM file of the CA that signed the server's certificate (system roots when nil).
    public var caFile: String?
    public var user: String?
    public var password: String?
    public var token: String?
    /// Shown by the server in its connection list.
    public var name: String
    public var connectTimeout: Duration = .seconds(5)
    /// Waits between reconnect attempts: a random time between half and all of
    /// `min(maxReconnectDelay, initialReconnectDelay × 2ⁿ)`, so clients that lost the same
    /// server don't return in lockstep.
    public var initialReconnectDelay: Duration = .milliseconds(100)
    public var maxReconnectDelay: Duration = .seconds(5)
    /// The client pings this often; `maxPingsOut` pings without a pong mean the server is gone.
    public var pingInterval: Duration = .seconds(30)
    public var maxPingsOut = 2
    /// A server line (INFO, MSG…) longer than this is a protocol violation.
    public var maxControlLineBytes = 64 << 10
    /// Bytes waiting to be written to a server that reads slowly; past it `publish` and
    /// `request` fail with `outboundFull` instead of buffering without bound.
    public var maxPendingBytes = 8 << 20

    /// `url` with its credentials (what stands before its last `@`) shown as `***`: the error
    /// that quotes it reaches logs, `conduit check` and IPC answers.
    static func hidingCredentials(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@") else { return url }
        return url[..<scheme.upperBound] + "***" + url[at...]
    }

    /// `nats://[user:password@|token@]host[:port]` or `tls://…`; port 4222 by default.
    public init(url: String, name: String = "conduit-nats") throws(NATSError) {
        var rest = Substring(url)
        if rest.hasPrefix("nats://") {
            tls = false
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("tls://") {
            tls = true
            rest = rest.dropFirst(6)
        } else {
            throw .invalidURL(Self.hidingCredentials(url))
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            if let colon = credentials.firstIndex(of: ":") {
                user = Self.unescaped(credentials[..<colon])
                password = Self.unescaped(credentials[credentials.index(after: colon)...])
            } else {
                token = Self.unescaped(credentials)
            }
            rest = rest[rest.index(after: at)...]
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        let hostAndPort: (Substring, Substring?)
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            let after = rest[rest.index(after: close)...]
            hostAndPort = (rest[rest.index(after: rest.startIndex)..<close], after.hasPrefix(":") ? after.dropFirst() : nil)
        } else if let colon = rest.lastIndex(of: ":") {
            hostAndPort = (rest[..<colon], rest[rest.index(after: colon)...])
        } else {
            hostAndPort = (rest, nil)
        }
        host = String(hostAndPort.0)
        // Checked here, not at the first connect: `nats://a:4222,b:4222` (other clients' list
        // form) passed, and the route then never connected, as `UnknownHost`.
        guard ServerAddress.isIPAddress(host) || Self.isHostName(host) else { throw .invalidURL(Self.hidingCredentials(url)) }
        if let portText = hostAndPort.1 {
            guard let port = Int(portText), (1...65_535).contains(port) else { throw .invalidURL(Self.hidingCredentials(url)) }
            self.port = port
        } else {
            port = 4222
        }
        self.name = name
    }

    /// Letters, digits, `-`, `_` and dots between them: what a host name is made of.
    private static func isHostName(_ host: String) -> Bool {
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
        }
    }

    /// `%40` → `@`: credentials in a URL are percent-encoded (kept as written when malformed).
    private static func unescaped(_ text: Substring) -> String {
        text.removingPercentEncoding ?? String(text)
    }

    /// Where the connection goes, without credentials: for logs and diagnostics.
    public var displayURL: String { "\(tls ? "tls" : "nats")://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}
