@preconcurrency import Crypto
import NIOConcurrencyHelpers
import Foundation

/// The shared key (SPEC §2): at least 8 bytes, rotatable at run time, compared in constant
/// time (SHA-256 digests compared by swift-crypto's constant-time equality), never logged.
public final class SharedKey: Sendable {
    public static let minimumBytes = 8

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
        guard key.utf8.count >= Self.minimumBytes else { throw ConduitKeyError() }
        state.withLockedValue { $0 = (key, SHA256.hash(data: Data(key.utf8))) }
    }

    private static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

public struct ConduitKeyError: Error, CustomStringConvertible {
    public var description: String { "a shared key must be at least \(SharedKey.minimumBytes) bytes" }
}
