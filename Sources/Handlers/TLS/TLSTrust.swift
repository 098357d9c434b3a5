import ConduitKit
import Foundation
import NIOCore
import NIOSSL

/// Which certificates `tls.connect` trusts: the system roots plus the route's CA (`caFile`,
/// `caPEM`) plus, per connection, CA certificates sent as the `tls.connect` payload; or none
/// at all when the route's `insecure` policy lets the connection skip verification.
///
/// The route's two contexts are built once (loading the system roots is not free); a
/// connection that brings its own CA gets a context of its own.
struct TLSTrust: Sendable {
    private let routeCAs: [NIOSSLCertificate]
    private let verifying: NIOSSLContext
    private let skipping: NIOSSLContext?
    private let policy: TLSOptions.InsecurePolicy

    /// The context a connection uses, and whether it verifies the server's certificate.
    struct Choice {
        let context: NIOSSLContext
        let verifies: Bool
    }

    init(options: TLSOptions) throws {
        var cas: [NIOSSLCertificate] = []
        if let file = options.caFile {
            cas += try Self.certificates(inPEM: try Self.contents(of: file), from: "caFile '\(file)'")
        }
        if let pem = options.caPEM {
            cas += try Self.certificates(inPEM: Array(pem.utf8), from: "caPEM")
        }
        routeCAs = cas
        policy = options.insecure
        verifying = try Self.context(trusting: cas)
        var skipping = TLSConfiguration.makeClientConfiguration()
        skipping.certificateVerification = .none
        self.skipping = options.insecure == .never ? nil : try NIOSSLContext(configuration: skipping)
    }

    /// - Parameters:
    ///   - insecureRequested: the request's `insecure: true` header.
    ///   - caPEM: the request's payload: CA certificates in PEM, or empty.
    func choice(insecureRequested: Bool, caPEM: ByteBuffer) throws(ConduitError) -> Choice {
        if let skipping, policy == .always || insecureRequested {
            return Choice(context: skipping, verifies: false)
        }
        if insecureRequested {
            throw .forbidden("this route verifies every certificate; 'insecure: true' needs the route option insecure: allowed")
        }
        guard caPEM.readableBytes > 0 else { return Choice(context: verifying, verifies: true) }
        do {
            let cas = try Self.certificates(inPEM: Array(caPEM.readableBytesView), from: "the tls.connect payload")
            return Choice(context: try Self.context(trusting: routeCAs + cas), verifies: true)
        } catch {
            throw .badRequest("the CA certificates in the tls.connect payload can't be used: \(error)")
        }
    }

    private static func context(trusting cas: [NIOSSLCertificate]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .default
        if !cas.isEmpty { configuration.additionalTrustRoots = [.certificates(cas)] }
        return try NIOSSLContext(configuration: configuration)
    }

    static func certificates(inPEM pem: [UInt8], from source: String) throws(ConduitError) -> [NIOSSLCertificate] {
        let certificates = try? NIOSSLCertificate.fromPEMBytes(pem)
        guard let certificates, !certificates.isEmpty else {
            throw .badRequest("\(source) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        return certificates
    }

    static func contents(of file: String) throws(ConduitError) -> [UInt8] {
        guard let bytes = FileManager.default.contents(atPath: file) else {
            throw .badRequest("cannot read '\(file)'")
        }
        return Array(bytes)
    }
}
