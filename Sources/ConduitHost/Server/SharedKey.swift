@preconcurrency import Crypto
import NIOConcurrencyHelpers
import Foundation

/// The shared key (SPEC §2): at least 8 bytes, rotatable at run time, compared in constant
/// time (SHA-256 digests compared by swift-crypto's constant-time equality), never logged.
public final class SharedKey: Sendable {
    public static let minimumBytes = 8
    /// Keys travel in URLs, headers and `Sec-WebSocket-Protocol`: a bound keeps every request
    /// under the listeners' header limits (a 100 KB key once locked every client out).
    public static let maximumBytes = 256

    /// Why `key` can't be a shared key, or nil: 8–256 visible ASCII characters, no spaces.
    public static func problem(with key: String) -> String? {
        guard (minimumBytes...maximumBytes).contains(key.utf8.count) else {
            return "a shared key must be \(minimumBytes) to \(maximumBytes) bytes, not \(key.utf8.count)"
        }
        guard key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            return "a shared key may hold visible ASCII characters only (no spaces or control characters)"
        }
        return nil
    }

    private let state: NIOLockedValueBox<(key: String, digest: SHA256.Digest)>

    /// Uses `configured` if it is long enough, else a random key.
    public init(configured: String) {
        let key = configured.utf8.count >= Self.minimumBytes ? configured : Self.random()
        state = NIOLockedValueBox((key, SHA256.hash(data: Data(key.utf8))))
    }

    public var value: String { state.withLockedValue { $0.key } }

    public func matches(_ candidate: String) -> Bool {
        let digest = SHA256.hash(data: Data(candidate.utf8))
        return state.withLockedValue { $0.digest } == digest
    }

    /// Replaces the key; open sockets are unaffected, new handshakes need the new one.
    public func rotate(to key: String) throws(ConduitKeyError) {
        if let problem = Self.problem(with: key) { throw ConduitKeyError(description: problem) }
        state.withLockedValue { $0 = (key, SHA256.hash(data: Data(key.utf8))) }
    }

    private static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

public struct ConduitKeyError: Error, CustomStringConvertible {
    public let description: String
}
