#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// A listener that could not bind, named with its address: SwiftNIO's error names the system
/// call only, and a host that would not start said just "bind(descriptor:ptr:bytes:): Address
/// already in use", whichever of its two ports was taken.
struct ListenFailure: Error, CustomStringConvertible {
    let listener: String
    let host: String
    let port: Int
    let cause: any Error

    var description: String {
        let reason = (cause as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(cause)"
        return "cannot listen for \(listener) on \(host):\(port): \(reason)"
    }

    /// Runs `bind`, naming what failed.
    static func naming<Bound>(_ listener: String, host: String, port: Int, _ bind: () async throws -> Bound) async throws -> Bound {
        do {
            return try await bind()
        } catch {
            throw ListenFailure(listener: listener, host: host, port: port, cause: error)
        }
    }
}
