public import ConduitKit

/// The `tls.*` route's options (YAML). Every key is optional; an unknown key is an error at
/// start-up, so a typo never silently weakens or changes the trust settings.
///
/// ```yaml
/// options:
///   caFile: /path/ca.pem       # CA certificates trusted besides the system roots (PEM file)
///   caPEM: "-----BEGIN …"      # the same, inline
///   insecure: never            # never | allowed (a request's `insecure: true`) | always
///   connectTimeoutSeconds: 10  # TCP connect plus TLS handshake
///   echoService: {enabled: true, host: 127.0.0.1, port: 0}   # + certificateFile, privateKeyFile,
///                                                            #   maxConnections: 256, handshakeTimeoutSeconds: 10
/// ```
public struct TLSOptions: HandlerOptions {
    /// When certificate verification may be skipped. Skipping is for local testing only.
    public enum InsecurePolicy: String, OptionChoice, Encodable, Sendable {
        /// Always verify.
        case never
        /// Skip verification for a `tls.connect` carrying the header `insecure: true`.
        case allowed
        /// Skip verification for every connection of the route.
        case always
    }

    public struct EchoService: HandlerOptions {
        public var enabled = false
        public var host = "127.0.0.1"
        /// 0: an ephemeral port (logged at start, and answered by `tls.echoService`).
        public var port = 0
        /// PEM files of the service's certificate and key; both absent: a self-signed
        /// certificate is generated at start.
        public var certificateFile: String?
        public var privateKeyFile: String?
        /// Connections open at once: anyone on the machine may connect, without the key, and
        /// each held a descriptor of the host's and 21 KB.
        public var maxConnections = 256
        /// A connection must complete its TLS handshake within this.
        public var handshakeTimeoutSeconds = 10.0

        public init() {}

        public func validate() throws(InvalidOption) {
            guard (0...65_535).contains(port) else { throw InvalidOption("port", "must be 0…65535") }
            guard (1...100_000).contains(maxConnections) else { throw InvalidOption("maxConnections", "must be 1 to 100000") }
            try InvalidOption.checkSeconds("handshakeTimeoutSeconds", handshakeTimeoutSeconds, maximum: 3600)
            guard (certificateFile == nil) == (privateKeyFile == nil) else {
                throw InvalidOption(certificateFile == nil ? "privateKeyFile" : "certificateFile",
                    "needs its partner: certificateFile and privateKeyFile go together (neither: a self-signed certificate)")
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
    /// Connections open (or opening) at once, for all ids: each holds a descriptor and TLS
    /// buffers, and any client with the key may name as many ids as it likes.
    public var maxConnections = 1024
    public var echoService = EchoService()

    public init() {}

    public func validate() throws(InvalidOption) {
        try InvalidOption.checkSeconds("connectTimeoutSeconds", connectTimeoutSeconds, maximum: 86_400)
        try InvalidOption.checkSeconds("congestionTimeoutSeconds", congestionTimeoutSeconds, maximum: 86_400)
        guard (1...1_000_000).contains(maxConnections) else { throw InvalidOption("maxConnections", "must be 1 to 1000000") }
    }
}
