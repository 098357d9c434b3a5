import ConduitKit
import Foundation
import NIOHTTP1

/// Who may open a socket (SPEC §2), checked in this order so that a client without the key
/// learns nothing else: not a WebSocket upgrade (400), Origin (403), shared key (403), ids (400).
struct HandshakePolicy: Sendable {
    struct Accepted: Sendable {
        let client: ClientID
        let window: String
        /// `conduit` when the client offered it (the key then travelled as a subprotocol).
        let subprotocol: String?
        /// `resume=` (SPEC §9); nil for a plain connection.
        var resume: ResumeRequest? = nil
    }

    struct Rejected: Error, Sendable {
        let status: HTTPResponseStatus
        let reason: String
        /// Headers the answer carries besides its own (the version a client may retry with).
        var advertised: HTTPHeaders = [:]
        /// Its label in `conduit_handshakes_refused_total`.
        var refusal: HandshakeRefusal = .badRequest
    }

    static let subprotocol = "conduit"
    static let keyProtocolPrefix = "conduit.key."

    let mode: SessionDependencies.Mode
    let sharedKey: SharedKey
    /// `server.allowedOrigins`, each checked at load (`WebOrigin`).
    let allowedOrigins: Set<WebOrigin>

    init(mode: SessionDependencies.Mode, sharedKey: SharedKey, allowedOrigins: [String]) {
        self.mode = mode
        self.sharedKey = sharedKey
        self.allowedOrigins = Set(allowedOrigins.compactMap(WebOrigin.init))
    }

    /// One `Host` line whose value is one authority, not a list.
    private static func hasOneHost(_ headers: HTTPHeaders) -> Bool {
        let hosts = headers["host"]
        return hosts.count == 1 && !hosts[0].contains(where: { $0 == "," || $0 == " " || $0 == "\t" })
    }

    func evaluate(_ head: HTTPRequestHead) -> Result<Accepted, Rejected> {
        let headers = head.headers
        // RFC 6455 §4.2.1: an HTTP/1.1 GET with Host (one, a single value: RFC 9112 §3.2),
        // `Upgrade` listing websocket (among up to 8 protocols, `UpgradeTokenLimit`), and a
        // nonce of 16 bytes in base64.
        guard head.method == .GET, head.version.major > 1 || head.version.minor >= 1, Self.hasOneHost(headers),
              headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" }),
              headers[canonicalForm: "upgrade"].contains(where: { $0.lowercased() == "websocket" }),
              let key = headers["sec-websocket-key"].first, Data(base64Encoded: key)?.count == 16
        else {
            return .failure(Rejected(
                status: .badRequest,
                reason: "not a WebSocket upgrade (RFC 6455: an HTTP/1.1 GET with Host, Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Key of 16 bytes in base64)",
                refusal: .notAnUpgrade))
        }
        // RFC 6455 §4.4: the versions spoken go back with the refusal, so a client can retry.
        guard headers["sec-websocket-version"].first == "13" else {
            return .failure(Rejected(
                status: .upgradeRequired, reason: "WebSocket version 13 only (RFC 6455)", advertised: ["sec-websocket-version": "13"], refusal: .notAnUpgrade))
        }
        // A browser sends one Origin; a second could only smuggle one past the check.
        let origins = headers["origin"]
        if !origins.isEmpty, origins.count > 1 || !isAllowed(origin: origins[0]) {
            return .failure(Rejected(status: .forbidden, reason: "origin not allowed", refusal: .origin))
        }
        let offered = headers[canonicalForm: "sec-websocket-protocol"].map(String.init)
        if mode == .conformanceEcho {
            // An id per connection (from its random Sec-WebSocket-Key), or each new
            // connection would replace the last: load tools open many at once.
            let safe = key.utf8.prefix(32).map { byte in
                Character(Unicode.Scalar(NameAlphabet.contains(byte) ? byte : UInt8(ascii: "-")))
            }
            return .success(Accepted(client: ClientID("conformance-" + String(safe))!, window: "0", subprotocol: nil))
        }
        let (path, query) = split(uri: head.uri)
        let keyFromProtocol = offered.first { $0.hasPrefix(Self.keyProtocolPrefix) }.map { String($0.dropFirst(Self.keyProtocolPrefix.count)) }
        guard let candidate = keyFromProtocol ?? query["key"], sharedKey.matches(candidate) else {
            return .failure(Rejected(status: .forbidden, reason: "missing or wrong key", refusal: .key))
        }
        // A subprotocol the host can't select: a browser fails the socket after the 101, by
        // when the id had taken another socket's place.
        guard keyFromProtocol == nil || offered.contains(Self.subprotocol) else {
            return .failure(Rejected(status: .badRequest, reason: "a key offered as a subprotocol needs 'conduit' offered with it"))
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard segments.count == 2, let client = ClientID(segments.first!), let window = ClientID(segments.last!) else {
            return .failure(Rejected(status: .badRequest, reason: "the path must be /<client-id>/<top-window-id>, each a uint64 or 1–64 of [A-Za-z0-9._-]"))
        }
        switch ResumeRequest.parse({ query[$0] }) {
        case .failure(let problem):
            return .failure(Rejected(status: .badRequest, reason: problem.message))
        case .success(let resume):
            return .success(Accepted(
                client: client, window: window.rawValue, subprotocol: offered.contains(Self.subprotocol) ? Self.subprotocol : nil,
                resume: resume))
        }
    }

    /// Default: no Origin, `null`, or a localhost origin on any scheme and port; plus the configured list.
    private func isAllowed(origin: String) -> Bool {
        if origin == "null" { return true }
        guard let origin = WebOrigin(origin) else { return false }
        return origin.isLoopback || allowedOrigins.contains(origin)
    }

    private func split(uri: String) -> (path: Substring, query: [String: String]) {
        let uri = Self.originForm(of: uri)
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            query[name] = value
        }
        return (uri[..<mark], query)
    }

    /// RFC 9112 §3.2.2: a server accepts a request target in absolute form
    /// (`http://host/path?query`) as well as in origin form (`/path?query`).
    private static func originForm(of uri: String) -> Substring {
        guard !uri.hasPrefix("/"), let scheme = uri.range(of: "://") else { return uri[...] }
        let afterAuthority = uri[scheme.upperBound...]
        return afterAuthority.firstIndex { $0 == "/" || $0 == "?" }.map { afterAuthority[$0...] } ?? ""
    }
}

