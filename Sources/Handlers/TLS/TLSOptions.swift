/// The `tls.*` route's options (YAML). Every key is optional; an unknown key is an error at
/// start-up, so a typo never silently weakens or changes the trust settings.
///
/// ```yaml
/// options:
///   caFile: /path/ca.pem       # CA certificates trusted besides the system roots (PEM file)
///   caPEM: "-----BEGIN …"      # the same, inline
///   insecure: never            # never | allowed (a request's `insecure: true`) | always
///   connectTimeoutSeconds: 10  # TCP connect plus TLS handshake
///   echoService: {enabled: true, host: 127.0.0.1, port: 0}   # + certificateFile, privateKeyFile
/// ```
public struct TLSOptions: Decodable, Sendable {
    /// When certificate verification may be skipped. Skipping is for local testing only.
    public enum InsecurePolicy: String, Decodable, Sendable {
        /// Always verify.
        case never
        /// Skip verification for a `tls.connect` carrying the header `insecure: true`.
        case allowed
        /// Skip verification for every connection of the route.
        case always

        public init(from decoder: any Decoder) throws {
            let value = try decoder.singleValueContainer()
            guard let policy = Self(rawValue: try value.decode(String.self)) else {
                throw DecodingError.dataCorruptedError(in: value, debugDescription: "insecure must be never, allowed or always")
            }
            self = policy
        }
    }

    public struct EchoService: Decodable, Sendable {
        public var enabled = false
        public var host = "127.0.0.1"
        /// 0: an ephemeral port (logged at start, and answered by `tls.echoService`).
        public var port = 0
        /// PEM files of the service's certificate and key; both absent: a self-signed
        /// certificate is generated at start.
        public var certificateFile: String?
        public var privateKeyFile: String?

        public init() {}

        private enum CodingKeys: String, CodingKey, CaseIterable {
            case enabled, host, port, certificateFile, privateKeyFile
        }

        public init(from decoder: any Decoder) throws {
            let options = try decoder.strictContainer(keyedBy: CodingKeys.self)
            enabled = try options.decodeIfPresent(Bool.self, forKey: .enabled) ?? enabled
            host = try options.decodeIfPresent(String.self, forKey: .host) ?? host
            port = try options.decodeIfPresent(Int.self, forKey: .port) ?? port
            certificateFile = try options.decodeIfPresent(String.self, forKey: .certificateFile)
            privateKeyFile = try options.decodeIfPresent(String.self, forKey: .privateKeyFile)
            guard (0...65_535).contains(port) else {
                throw DecodingError.dataCorruptedError(forKey: .port, in: options, debugDescription: "the port must be 0…65535")
            }
            guard (certificateFile == nil) == (privateKeyFile == nil) else {
                throw DecodingError.dataCorruptedError(
                    forKey: certificateFile == nil ? .privateKeyFile : .certificateFile, in: options,
                    debugDescription: "certificateFile and privateKeyFile go together (neither: a self-signed certificate)")
            }
        }
    }

    public var caFile: String?
    public var caPEM: String?
    public var insecure = InsecurePolicy.never
    public var connectTimeoutSeconds = 10.0
    /// How long a client may stay congested (the host's high-water mark) before its stream is
    /// ended with `tls.end`; meanwhile nothing is read from the server (SPEC §3).
    public var congestionTimeoutSeconds = 30.0
    public var echoService = EchoService()

    public init() {}

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case caFile, caPEM, insecure, connectTimeoutSeconds, congestionTimeoutSeconds, echoService
    }

    public init(from decoder: any Decoder) throws {
        let options = try decoder.strictContainer(keyedBy: CodingKeys.self)
        caFile = try options.decodeIfPresent(String.self, forKey: .caFile)
        caPEM = try options.decodeIfPresent(String.self, forKey: .caPEM)
        insecure = try options.decodeIfPresent(InsecurePolicy.self, forKey: .insecure) ?? insecure
        connectTimeoutSeconds = try options.decodeIfPresent(Double.self, forKey: .connectTimeoutSeconds) ?? connectTimeoutSeconds
        congestionTimeoutSeconds = try options.decodeIfPresent(Double.self, forKey: .congestionTimeoutSeconds) ?? congestionTimeoutSeconds
        echoService = try options.decodeIfPresent(EchoService.self, forKey: .echoService) ?? echoService
        for (key, value) in [(CodingKeys.connectTimeoutSeconds, connectTimeoutSeconds), (.congestionTimeoutSeconds, congestionTimeoutSeconds)]
        where !(value > 0 && value <= 86_400) {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: options, debugDescription: "\(key.stringValue) must be above 0 and at most 86400 (one day)")
        }
    }
}

extension Decoder {
    /// A keyed container that throws on any key `Keys` doesn't name.
    fileprivate func strictContainer<Keys: CodingKey & CaseIterable>(
        keyedBy type: Keys.Type
    ) throws -> KeyedDecodingContainer<Keys> {
        let all = try container(keyedBy: AnyKey.self)
        let known = Set(Keys.allCases.map(\.stringValue))
        if let unknown = all.allKeys.first(where: { !known.contains($0.stringValue) }) {
            let names = Keys.allCases.map(\.stringValue).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(
                forKey: unknown, in: all, debugDescription: "unknown option '\(unknown.stringValue)'; known: \(names)")
        }
        return try container(keyedBy: type)
    }
}

private struct AnyKey: CodingKey {
    let stringValue: String
    init(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}
