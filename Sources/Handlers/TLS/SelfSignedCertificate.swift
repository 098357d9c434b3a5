import Crypto
public import Foundation
import SwiftASN1
import X509

/// A self-signed certificate and its private key, made at run time (swift-certificates +
/// swift-crypto), for local TLS services whose clients are told the certificate to trust.
///
/// The certificate is its own trust anchor: it is a CA (so it can be given as the CA to trust)
/// and a server certificate for `localhost`, `127.0.0.1` and `::1` (so hostname and IP checks
/// pass on loopback).
public struct SelfSignedCertificate: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String

    public init(commonName: String = "Conduit local TLS", validFor lifetime: TimeInterval = 7 * 24 * 3600) throws {
        let signingKey = P256.Signing.PrivateKey()
        let key = Certificate.PrivateKey(signingKey)
        let name = try DistinguishedName { CommonName(commonName) }
        // Backdated a little so a peer whose clock is slightly behind still accepts it.
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-300),
            notValidAfter: now.addingTimeInterval(lifetime),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"),
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                    .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
                ])
            },
            issuerPrivateKey: key
        )
        certificatePEM = try certificate.serializeAsPEM().pemString
        privateKeyPEM = signingKey.pemRepresentation
    }
}
