/// One flat setting: its YAML key, its environment variable and how to parse it. The one
/// table that `ConfigurationLoader` reads for both the file and the environment.
struct SettingField: Sendable {
    let section: String
    let key: String
    /// A YAML list is read as its items joined by commas (else only a scalar is).
    var takesList = false
    let apply: @Sendable (inout HostSettings, String) throws(SettingValueError) -> Void
    /// Whether two settings differ in this one: a reload names those it did not apply.
    let differs: @Sendable (HostSettings, HostSettings) -> Bool

    private init<Value: Equatable & SendableMetatype>(
        _ section: String, _ key: String, takesList: Bool = false, _ path: any WritableKeyPath<HostSettings, Value> & Sendable,
        parse: @escaping @Sendable (String) throws(SettingValueError) -> Value
    ) {
        self.section = section
        self.key = key
        self.takesList = takesList
        apply = { settings, text throws(SettingValueError) in settings[keyPath: path] = try parse(text) }
        differs = { $0[keyPath: path] != $1[keyPath: path] }
    }

    /// `section.key`, as the YAML nests it.
    var name: String { "\(section).\(key)" }

    /// The settings that differ between `old` and `new`, by name.
    static func changes(from old: HostSettings, to new: HostSettings) -> [String] {
        all.filter { $0.differs(old, new) }.map(\.name) + (old.cluster == new.cluster ? [] : ["server.cluster"])
    }

    /// `CONDUIT_` and the key in upper snake case: `ipcPort` → `CONDUIT_IPC_PORT`.
    var environmentName: String {
        var name = "CONDUIT_"
        for character in key {
            if character.isUppercase { name.append("_") }
            name.append(contentsOf: character.uppercased())
        }
        return name
    }

    static let all: [SettingField] = [
        .host("server", "host", \.host),
        .port("server", "port", \.port),
        .port("server", "ipcPort", \.ipcPort),
        .key("server", "sharedKey", \.sharedKey),
        .origins("server", "allowedOrigins", \.allowedOrigins),
        .string("server", "runtimeFile", \.runtimeFile),
        .count("limits", "maxMessageBytes", \.maxMessageBytes, 1024...(256 << 20)),
        .count("limits", "chunkQueueBytes", \.chunkQueueBytes, 0...(1 << 30)),
        .count("limits", "pushBufferBytes", \.pushBufferBytes, 0...(1 << 30)),
        .count("limits", "pushBufferMessages", \.pushBufferMessages, 0...1_000_000),
        .count("limits", "outboundQueueBytes", \.outboundQueueBytes, (64 << 10)...(1 << 30)),
        .count("limits", "outboundQueueMessages", \.outboundQueueMessages, 1...1_000_000),
        .count("limits", "resumeWindowBytes", \.resumeWindowBytes, (64 << 10)...(1 << 30)),
        .count("limits", "hostBufferBytes", \.hostBufferBytes, (1 << 20)...(64 << 30)),
        .count("limits", "congestionHighWaterBytes", \.congestionHighWaterBytes, 1024...(1 << 30)),
        .count("limits", "congestionLowWaterBytes", \.congestionLowWaterBytes, 0...(1 << 30)),
        .choice("limits", "outboundPolicy", \.outboundPolicy),
        .seconds("limits", "handshakeTimeoutSeconds", \.handshakeTimeoutSeconds, maximum: 3600),
        .count("limits", "maxPendingHandshakes", \.maxPendingHandshakes, 1...1_000_000),
        .count("limits", "maxHandshakeBytes", \.maxHandshakeBytes, 1024...(1 << 20)),
        .seconds("limits", "messageArrivalTimeoutSeconds", \.messageArrivalTimeoutSeconds, maximum: 86_400),
        .seconds("limits", "closeTimeoutSeconds", \.closeTimeoutSeconds, maximum: 3600),
        .seconds("limits", "clientGraceSeconds", \.clientGraceSeconds, maximum: 7 * 86_400),
        .count("limits", "maxClients", \.maxClients, 1...10_000_000),
        .seconds("limits", "requestTimeoutSeconds", \.requestTimeoutSeconds, maximum: 86_400),
        .count("limits", "maxRequestsInFlight", \.maxRequestsInFlight, 1...1_000_000),
        .seconds("limits", "ipcReplyTimeoutSeconds", \.ipcReplyTimeoutSeconds, maximum: 86_400),
        .count("limits", "ipcMaxConnections", \.ipcMaxConnections, 2...100_000),
        .seconds("limits", "ipcIdleTimeoutSeconds", \.ipcIdleTimeoutSeconds, maximum: 86_400),
        .seconds("limits", "ipcBodyTimeoutSeconds", \.ipcBodyTimeoutSeconds, maximum: 86_400),
        .seconds("limits", "handlerStartStopSeconds", \.handlerStartStopSeconds, maximum: 3600),
    ]

    private static func string(_ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, String> & Sendable) -> Self {
        Self(section, key, path) { text in text }
    }

    /// An address to listen on: an IPv4 or IPv6 literal, or a host name. Anything else failed
    /// only at bind, without file:line:column.
    private static func host(_ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, String> & Sendable) -> Self {
        Self(section, key, path) { text throws(SettingValueError) in
            guard ListenAddress.isValid(text) else {
                throw SettingValueError("'\(text)' is not an address to listen on (an IPv4 or IPv6 address, or a host name)")
            }
            return text
        }
    }

    /// Empty or under 8 bytes: a random key is generated at start; otherwise a valid key.
    private static func key(_ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, String> & Sendable) -> Self {
        Self(section, key, path) { text throws(SettingValueError) in
            if text.utf8.count >= SharedKey.minimumBytes, let problem = SharedKey.problem(with: text) {
                throw SettingValueError(problem)
            }
            return text
        }
    }

    /// Comma-separated origins, each as a browser sends it (`WebOrigin`): one with a path, say,
    /// could never match, and let nobody in without a word.
    private static func origins(_ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, [String]> & Sendable) -> Self {
        Self(section, key, takesList: true, path) { text throws(SettingValueError) in
            let origins = text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
            // `null` is allowed anyway (a sandboxed page, a file).
            if let bad = origins.first(where: { $0 != "null" && WebOrigin($0) == nil }) {
                throw SettingValueError("'\(bad)' is not an origin: scheme://host[:port], as a browser sends it in Origin (no path)")
            }
            return origins
        }
    }

    private static func port(_ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, Int> & Sendable) -> Self {
        Self(section, key, path) { text throws(SettingValueError) in
            guard let value = Int(text), (0...65_535).contains(value) else {
                throw SettingValueError("'\(text)' is not a port number (0–65535; 0 picks a free port)")
            }
            return value
        }
    }

    /// A whole number within `range` (documented in docs/configuration.md: a value past
    /// it would overflow a conversion later and crash the host instead of being refused here).
    private static func count(
        _ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, Int> & Sendable, _ range: ClosedRange<Int>
    ) -> Self {
        Self(section, key, path) { text throws(SettingValueError) in
            guard let value = Int(text), range.contains(value) else {
                throw SettingValueError("'\(text)' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return value
        }
    }

    private static func seconds(
        _ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, Double> & Sendable, maximum: Double
    ) -> Self {
        Self(section, key, path) { text throws(SettingValueError) in
            // From a millisecond: 1e-300 passed "above 0", was 0 ns as a timer, and every
            // handshake timed out at once.
            guard let value = Double(text), value >= 0.001, value <= maximum else {
                throw SettingValueError("'\(text)' is not a number of seconds from 0.001 to \(Int(maximum))")
            }
            return value
        }
    }

    private static func choice<T: RawRepresentable<String> & CaseIterable & Equatable & Sendable>(
        _ section: String, _ key: String, _ path: any WritableKeyPath<HostSettings, T> & Sendable
    ) -> Self {
        Self(section, key, path) { text throws(SettingValueError) in
            guard let value = T(rawValue: text) else {
                let choices = T.allCases.map { "'\($0.rawValue)'" }.joined(separator: " or ")
                throw SettingValueError("'\(text)' is not one of \(choices)")
            }
            return value
        }
    }
}

struct SettingValueError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

extension Substring {
    func trimmingWhitespace() -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
