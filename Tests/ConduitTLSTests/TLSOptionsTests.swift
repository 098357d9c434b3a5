import ConduitHost
import NIOPosix
import Testing

/// Bad `tls.*` options stop the host at start-up with the line, the column and a sentence:
/// a decoding error points at the value, a CA that cannot be used at the route's options.
@Suite("TLS options")
struct TLSOptionsTests {
    @Test("a bad option is refused where it is written", arguments: [
        ("caFiel: /tmp/ca.pem", 5, 15, "unknown option 'caFiel'"),
        ("insecure: sometimes", 5, 17, "'sometimes' is not one of never, allowed, always"),
        ("connectTimeoutSeconds: 0", 5, 30, "option 'connectTimeoutSeconds' must be at least 0.001"),
        ("echoService: {enabled: true, port: 70000}", 5, 42, "option 'echoService.port' must be 0…65535"),
        ("echoService: {enabled: true, certificateFile: /tmp/cert.pem}", 5, 53, "go together"),
        ("caFile: /nonexistent/ca.pem", 5, 7, "cannot read '/nonexistent/ca.pem'"),
        // Read when the service started only: `conduit check` called such a file ok.
        ("echoService: {enabled: true, certificateFile: /nonexistent/cert.pem, privateKeyFile: /nonexistent/key.pem}", 5, 7, "cannot read '/nonexistent/cert.pem'"),
        ("echoService: {enabled: true, certificateFile: /etc/passwd, privateKeyFile: /etc/passwd}", 5, 7, "echoService.certificateFile '/etc/passwd' holds no PEM certificate"),
        ("caPEM: not a certificate", 5, 7, "caPEM holds no PEM certificate"),
    ])
    func badOption(option: String, line: Int, column: Int, says: String) throws {
        let yaml = "routes:\n  - route: tls.*\n    handler: tls\n    options:\n      \(option)\n"
        let error = #expect(throws: ConfigurationError.self) {
            let configuration = try ConfigurationLoader(environment: [:]).load(yaml: yaml, file: "tls.yaml")
            try RouteRegistry.validate(configuration, catalog: .tlsTests, group: MultiThreadedEventLoopGroup.singleton)
        }
        #expect(error?.message.contains(says) == true, "\(error?.message ?? "")")
        #expect(error?.location.line == line, "\(error.map { "\($0)" } ?? "")")
        #expect(error?.location.column == column, "\(error.map { "\($0)" } ?? "")")
    }
}
