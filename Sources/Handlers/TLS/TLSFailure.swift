import ConduitKit
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// TLS and socket failures as error replies a client can act on: what failed, with whom, and
/// what to change. Certificate and handshake failures are `TLSError`; a server that is not
/// there is `UnavailableError`; one that is too slow is `TimeoutError`.
enum TLSFailure {
    static let kind = ConduitError.Kind("TLSError")

    /// The handshake did not finish within the connect timeout.
    struct HandshakeTimeout: Error {}
    /// The server closed the connection before the handshake finished.
    struct ClosedDuringHandshake: Error {}

    /// The TCP connection could not be made.
    static func connecting(to endpoint: TLSConnection.Endpoint, _ error: any Error) -> ConduitError {
        if case ChannelError.connectTimeout = error {
            return .timeout("connecting to \(endpoint) timed out")
        }
        if let error = error as? NIOConnectionError {
            if error.connectionErrors.isEmpty, let dnsError = error.dnsAError ?? error.dnsAAAAError {
                return .unavailable("cannot resolve '\(endpoint.host)': \(dnsError)")
            }
            if error.connectionErrors.contains(where: { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }) {
                return .unavailable("\(endpoint) refused the connection (nothing listens on port \(endpoint.port)?)")
            }
        }
        if (error as? IOError)?.errnoCode == ECONNREFUSED {
            return .unavailable("\(endpoint) refused the connection (nothing listens on port \(endpoint.port)?)")
        }
        return .unavailable("cannot connect to \(endpoint): \(error)")
    }

    /// The TCP connection was made but the TLS handshake failed.
    static func handshaking(with endpoint: TLSConnection.Endpoint, _ error: any Error) -> ConduitError {
        switch error {
        case is HandshakeTimeout:
            return .timeout("the TLS handshake with \(endpoint) did not finish in time")
        case is ClosedDuringHandshake, NIOSSLError.uncleanShutdown:
            return ConduitError(kind, "\(endpoint) closed the connection during the TLS handshake (is it a TLS server?)")
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            return ConduitError(
                kind, "the certificate of \(endpoint) is not valid for '\(endpoint.serverName ?? endpoint.host)'; "
                    + "set 'servername' to a name the certificate holds")
        case NIOSSLError.handshakeFailed(let reason) where reasonCode(reason) == "CERTIFICATE_VERIFY_FAILED":
            return ConduitError(
                kind, "the certificate of \(endpoint) is not trusted; trust its CA (route option caFile or caPEM, "
                    + "or PEM as the tls.connect payload), or, for local testing only, connect with 'insecure: true'")
        case NIOSSLError.handshakeFailed(let reason):
            return ConduitError(kind, "the TLS handshake with \(endpoint) failed: \(reasonCode(reason))")
        default:
            return ConduitError(kind, "the TLS handshake with \(endpoint) failed: \(error)")
        }
    }

    /// BoringSSL's reason (`WRONG_VERSION_NUMBER`) out of its error stack's description, which
    /// also names a source file; the whole description when it has no such reason.
    private static func reasonCode(_ error: BoringSSLError) -> String {
        let description = "\(error)"
        guard let marker = description.range(of: "OPENSSL_internal:") else { return description }
        return String(description[marker.upperBound...].prefix { $0 != " " && $0 != "]" })
    }

    /// A write on an established connection failed.
    static func writing(to endpoint: TLSConnection.Endpoint, _ error: any Error) -> ConduitError {
        switch error {
        case ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed, ChannelError.outputClosed:
            return .unavailable("the TLS connection to \(endpoint) is closed")
        default:
            return .unavailable("writing to \(endpoint) failed: \(error)")
        }
    }

    /// The `reason` header of a `tls.end` that was not a clean close.
    static func describeEnd(_ error: any Error) -> String {
        switch error {
        case NIOSSLError.uncleanShutdown: "the server closed the TCP connection without a TLS close_notify"
        default: "\(error)"
        }
    }
}
