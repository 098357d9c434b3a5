import Foundation

/// An origin as a browser sends it in `Origin` (RFC 6454 §6.2): `scheme://host[:port]` and
/// nothing else. Scheme and host compare without case and a scheme's default port is left
/// out, as browsers write it: a configured `https://App.example:443/` is the origin a browser
/// sends as `https://app.example`. Matched as text, such an entry never let a browser in.
struct WebOrigin: Hashable, Sendable {
    let scheme: String
    let host: String
    /// Nil when absent or the scheme's default.
    let port: Int?

    private static let defaultPorts = ["http": 80, "https": 443, "ws": 80, "wss": 443]

    /// Nil for anything but an origin: a path, a query, user information, a bad port or host.
    /// One trailing `/` is allowed (a configured entry copied from an address bar).
    init?(_ text: String) {
        var rest = Substring(text.lowercased())
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let separator = rest.range(of: "://") else { return nil }
        let scheme = rest[..<separator.lowerBound]
        guard scheme.first?.isLetter == true, scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else {
            return nil
        }
        rest = rest[separator.upperBound...]
        let host: Substring
        if rest.hasPrefix("[") {
            // An IPv6 literal: hex digits and colons (an embedded IPv4 part has dots).
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[...close]
            guard host.count > 2, host.dropFirst().dropLast().allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            host = rest.prefix { $0 != ":" }
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }) else { return nil }
        }
        rest = rest[host.endIndex...]
        var port: Int?
        if !rest.isEmpty {
            let digits = rest.dropFirst()
            guard rest.first == ":", (1...5).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let number = Int(digits), number <= 65_535 else { return nil }
            port = number
        }
        self.scheme = String(scheme)
        self.host = String(host)
        self.port = port == Self.defaultPorts[self.scheme] ? nil : port
    }

    /// localhost, 127.0.0.1 or [::1], on any scheme and port: allowed without configuration.
    var isLoopback: Bool { ["localhost", "127.0.0.1", "[::1]"].contains(host) }
}
