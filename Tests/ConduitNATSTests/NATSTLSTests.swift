import ConduitNATS
import ConduitTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

/// `tls://` against a nats-server that requires TLS, with a CA made for the test by openssl.
@Suite(.serialized) struct NATSTLSTests {
    /// A CA and a server certificate for `subjectAltName` signed by it, in a fresh directory.
    static func makeCertificates(subjectAltName: String = "IP:127.0.0.1,DNS:localhost") async throws -> String {
        let directory = NSTemporaryDirectory() + "conduit-nats-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=conduit-test-ca
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=localhost
            printf 'subjectAltName=\(subjectAltName)\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
            """
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", script]
        shell.standardOutput = FileHandle.nullDevice
        shell.standardError = FileHandle.nullDevice
        try shell.run()
        await offThePool { [shell] in shell.waitUntilExit() }
        guard shell.terminationStatus == 0 else { throw TestClientError.missingTool("openssl (apt-get install openssl)") }
        return directory
    }

    static func client(_ url: String, caFile: String?) throws -> NATSClient {
        var options = try NATSClientOptions(url: url)
        options.caFile = caFile
        options.initialReconnectDelay = .milliseconds(50)
        options.maxReconnectDelay = .milliseconds(200)
        return NATSClient(options: options, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
    }

    @Test func requestsFlowOverTLSAndAnUntrustedServerIsRefused() async throws {
        let certificates = try await Self.makeCertificates()
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        let configuration = "tls {\n  cert_file: \"\(certificates)/server.pem\"\n  key_file: \"\(certificates)/server.key\"\n}"
        try await NATSServerProcess.run(configuration: configuration) { server in
            let url = "tls://127.0.0.1:\(server.port)"
            let worker = try Self.client(url, caFile: "\(certificates)/ca.pem")
            let caller = try Self.client(url, caFile: "\(certificates)/ca.pem")
            try await worker.connect()
            try await caller.connect()
            #expect(caller.serverInfo?.tlsRequired == true)
            try await NATSClientTests.answer(on: "secure.echo", with: worker) { $0.payload }
            let reply = try await caller.request("secure.echo", payload: ByteBuffer(string: "over tls"), timeout: .seconds(30))
            #expect(String(buffer: reply.payload) == "over tls")

            // The system roots don't know the test CA: the handshake fails, and it keeps trying.
            let untrusting = try Self.client(url, caFile: nil)
            untrusting.start()
            try await waitUntil { untrusting.lastError != nil }
            #expect(untrusting.connectionState == .connecting)
            await untrusting.close()
            await worker.close()
            await caller.close()
        }
    }

    /// nats-server announces its cluster's other servers by IP. Checked by IP, a certificate
    /// made for the cluster's name (here `localhost` alone) failed every failover, and the
    /// route stayed down with one server of two alive. The configured name is checked now,
    /// as other NATS clients do.
    @Test func aFailoverToAServerAnnouncedByIPChecksTheConfiguredName() async throws {
        let certificates = try await Self.makeCertificates(subjectAltName: "DNS:localhost")
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        let tls = "tls {\n  cert_file: \"\(certificates)/server.pem\"\n  key_file: \"\(certificates)/server.key\"\n}"
        let (a, b) = try await NATSClientTests.cluster(tls)
        defer {
            a.stop()
            b.stop()
        }
        let caller = try Self.client("tls://localhost:\(a.port)", caFile: "\(certificates)/ca.pem")
        let worker = try Self.client("tls://localhost:\(b.port)", caFile: "\(certificates)/ca.pem")
        try await NATSClientTests.failsOver(caller, from: a, to: b, worker: worker)
    }
}
