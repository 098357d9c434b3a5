import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SwiftASN1
import X509

/// One client id's TLS connection to a server: opened by `tls.connect`, written by
/// `tls.write`; what the server sends is pushed by its `TLSStreamReader`.
final class TLSConnection: Sendable {
    /// Where a `tls.connect` goes: headers `host`, `port` and optional `servername`.
    struct Endpoint: Sendable, CustomStringConvertible {
        let host: String
        let port: Int
        /// Sent as SNI and checked against the certificate; nil for an IP address, whose
        /// certificate is checked against the address.
        let serverName: String?

        init(_ request: Request) throws(ConduitError) {
            host = try request.require("host")
            // Empty, it became the certificate's name to check, and the error spoke of `servername`.
            guard !host.isEmpty else { throw .badRequest("'host' must name the server (a DNS name or an IP address), not be empty") }
            let portText = try request.require("port")
            guard let port = Int(portText), (1...65_535).contains(port) else {
                throw .badRequest("'port' must be 1…65535, not '\(portText)'")
            }
            self.port = port
            let isAddress = (try? SocketAddress(ipAddress: host, port: port)) != nil
            serverName = request.headers["servername"] ?? (isAddress ? nil : host)
            if let serverName, !Self.isDNSName(serverName) || (try? SocketAddress(ipAddress: serverName, port: port)) != nil {
                throw .badRequest(
                    "'servername' (else 'host') must be a DNS name: letters, digits, '-', '_' and '.', at most 253 characters; leave it out to check the certificate against the address")
            }
        }

        /// A name SNI can carry and a certificate can hold: SwiftNIO SSL refused others (a NUL,
        /// past 255 bytes) only once connected, answered as the server being unavailable.
        static func isDNSName(_ name: String) -> Bool {
            let labels = name.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            // A trailing dot (the root) is allowed: one empty label at the end.
            let named = labels.last?.isEmpty == true ? labels.dropLast() : labels[...]
            return (1...253).contains(name.utf8.count) && !named.isEmpty
                && named.allSatisfy { label in
                    (1...63).contains(label.count)
                        && label.allSatisfy { byte in
                            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                        }
                }
        }

        var description: String { "\(host):\(port)" }
    }

    /// The `tls.connect` reply.
    struct Summary: Encodable {
        let host: String
        let port: Int
        let servername: String?
        /// False when the server's certificate was not checked (`insecure`).
        let verified: Bool
    }

    let endpoint: Endpoint
    let verified: Bool
    private let channel: any Channel
    private let client: ClientID
    /// The stream's pushes, held until the connection is the client's (`release`).
    private let heldPushes: TLSHeldPushes
    private let routes: TLSPushRoutes
    /// How long writes may wait with none of them taken by the socket: the server reads
    /// nothing. Then the stream ends, and the writes fail.
    private let writeStallTimeout: TimeAmount
    private let writes = NIOLockedValueBox(WriteProgress())

    /// Writes handed to the channel and not yet taken by the socket; one timer a connection
    /// watches them (a timer a write would cost NIO a search of its timers to cancel).
    private struct WriteProgress {
        var pending = 0
        /// When a write was last taken, or the first of the pending ones began.
        var lastProgress = NIODeadline.now()
        var watching = false
    }

    private init(
        endpoint: Endpoint, verified: Bool, channel: any Channel, client: ClientID, heldPushes: TLSHeldPushes, routes: TLSPushRoutes,
        writeStallTimeout: TimeAmount
    ) {
        self.endpoint = endpoint
        self.verified = verified
        self.channel = channel
        self.client = client
        self.heldPushes = heldPushes
        self.routes = routes
        self.writeStallTimeout = writeStallTimeout
    }

    /// Connects and completes the handshake, both within `timeout`.
    static func open(
        _ endpoint: Endpoint, for client: ClientID, trust: TLSTrust.Choice, timeout: TimeAmount,
        congestionTimeout: TimeAmount, pushes: any PushSink, routes: TLSPushRoutes, group: any EventLoopGroup
    ) async throws(ConduitError) -> TLSConnection {
        let eventLoop = group.next()
        let handshake = eventLoop.makePromise(of: Void.self)
        let heldPushes = TLSHeldPushes(pushes)
        // One deadline for both: the handshake's own `timeout` from the connect's end made up to
        // twice it (17 s of the default 10 for a listener slow to accept and then silent).
        let end = NIODeadline.now() + timeout
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(timeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let tls = try NIOSSLClientHandler(context: trust.context, serverHostname: endpoint.serverName)
                        let reader = TLSStreamReader(
                            client: client, pushes: heldPushes, routes: routes, handshake: handshake, congestionTimeout: congestionTimeout)
                        try channel.pipeline.syncOperations.addHandlers(tls, reader)
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port)
                .get()
        } catch {
            handshake.fail(error)
            throw TLSFailure.connecting(to: endpoint, error)
        }
        let deadline = eventLoop.scheduleTask(deadline: end) {
            handshake.fail(TLSFailure.HandshakeTimeout())
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        do {
            try await handshake.futureResult.get()
            if trust.verifies, let name = endpoint.serverName, !(await certificate(of: channel, holds: name)) {
                throw NIOSSLExtraError.failedToValidateHostname
            }
        } catch {
            channel.close(promise: nil)
            throw TLSFailure.handshaking(with: endpoint, error)
        }
        return TLSConnection(
            endpoint: endpoint, verified: trust.verifies, channel: channel, client: client, heldPushes: heldPushes, routes: routes,
            writeStallTimeout: congestionTimeout)
    }

    /// Whether the server's certificate holds `name` (RFC 6125, swift-certificates' check with
    /// the name alone). SwiftNIO SSL's own check also passes a certificate whose IP address
    /// entry is the connected address, whatever the name: connected to 127.0.0.1, a certificate
    /// for `localhost` and 127.0.0.1 passed as `example.com`, `verified: true`.
    private static func certificate(of channel: any Channel, holds name: String) async -> Bool {
        let leaf = try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
        }.get()
        guard let der = try? leaf?.toDERBytes(), let certificate = try? Certificate(derEncoded: der) else { return false }
        // BoringSSL verified the chain already: the certificate as its own root, its critical
        // extensions taken as handled, leaves the name to check.
        var verifier = Verifier(rootCertificates: CertificateStore([certificate])) {
            ServerIdentityPolicy(serverHostname: name, serverIP: nil)
            ChainVerifiedAlready(verifyingCriticalExtensions: certificate.extensions.filter(\.critical).map(\.oid))
        }
        guard case .validCertificate = await verifier.validate(leaf: certificate, intermediates: CertificateStore()) else { return false }
        return true
    }

    var summary: Summary {
        Summary(host: endpoint.host, port: endpoint.port, servername: endpoint.serverName, verified: verified)
    }

    /// False from the moment either side closed it (before `tls.end` is pushed).
    var isOpen: Bool { channel.isActive }

    /// Resolves when the connection is closed, by either side.
    var closed: EventLoopFuture<Void> { channel.closeFuture }

    /// A write is handed to the channel in slices of this size, each taken by the socket
    /// counting as progress: timed whole, one 16 MiB write to a server reading 800 KB/s was
    /// taken for a server that reads nothing, and the stream ended.
    static let writeSliceBytes = 64 * 1024

    /// Writes at once (so writes keep request order) and replies once the bytes are handed to
    /// the socket. Until then the write is a request in flight, holding its bytes of the host's
    /// budget: a server that reads nothing kept every write waiting, outside any bound. When
    /// nothing is taken for `writeStallTimeout` the stream ends (`tls.end`) and they fail: they
    /// waited unanswered for good, each holding a place of the connection's requests in flight.
    /// Counted only once the write runs: a write the connection's bound on requests refused
    /// stayed pending for good, and a healthy stream was ended as stalled.
    func write(_ payload: ByteBuffer, _ responder: Responder) {
        let bytes = payload.readableBytes
        responder.respondWhenDone { [self] finish in
            let startsWatch = writes.withLockedValue { writes in
                if writes.pending == 0 { writes.lastProgress = .now() }
                writes.pending += 1
                defer { writes.watching = true }
                return !writes.watching
            }
            if startsWatch { watchWrites(until: .now() + writeStallTimeout) }
            writeInSlices(payload).whenComplete { [endpoint, writes] result in
                writes.withLockedValue { writes in
                    writes.pending -= 1
                    writes.lastProgress = .now()
                }
                switch result {
                case .success: finish(Reply.jsonOutcome(["bytes": bytes]))
                case .failure(let error): finish(.failure(TLSFailure.writing(to: endpoint, error)))
                }
            }
        }
    }

    /// Writes `payload` as slices of `writeSliceBytes`, in one task of the channel's event loop
    /// (so no other write comes between them); each slice before the last marks progress when
    /// taken (the last is the whole write's, marked by its caller). Each is flushed on its own:
    /// SwiftNIO SSL completes the writes of one flush together, with the last. Resolves with
    /// the last slice (a failure fails every slice after it).
    private func writeInSlices(_ payload: ByteBuffer) -> EventLoopFuture<Void> {
        channel.eventLoop.flatSubmit { [self] in writeSlicesOnTheLoop(payload) }
    }

    private func writeSlicesOnTheLoop(_ payload: ByteBuffer) -> EventLoopFuture<Void> {
        var rest = payload
        while rest.readableBytes > Self.writeSliceBytes {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenSuccess { [writes] in writes.withLockedValue { $0.lastProgress = .now() } }
            channel.writeAndFlush(rest.readSlice(length: Self.writeSliceBytes)!, promise: promise)
        }
        return channel.writeAndFlush(rest)
    }

    /// Checks at `deadline` whether the pending writes moved since; the check is set again
    /// while writes are pending, and the stream ends when they have not moved for the timeout.
    private func watchWrites(until deadline: NIODeadline) {
        enum Verdict { case idle, moving(NIODeadline), stalled }
        channel.eventLoop.scheduleTask(deadline: deadline) { [self] in
            let verdict = writes.withLockedValue { writes -> Verdict in
                let due = writes.lastProgress + writeStallTimeout
                guard writes.pending > 0, due <= .now() else {
                    if writes.pending > 0 { return .moving(due) }
                    writes.watching = false
                    return .idle
                }
                writes.watching = false
                return .stalled
            }
            if case .moving(let next) = verdict { return watchWrites(until: next) }
            guard case .stalled = verdict else { return }
            let seconds = Double(writeStallTimeout.nanoseconds) / 1e9
            _ = end(reason: "the server read nothing for \(seconds) s (congestionTimeoutSeconds): writes to it could not be sent")
        }
    }

    /// The connection is the client's (checked, registered): what the server sent goes to it,
    /// and reading starts again. A held push refused ends the stream there. On the connection's
    /// loop, where the server's close can't come between the release and the check below: off
    /// it, the close pushed a `tls.end` without a reason after the refused push, and the one with
    /// the reason was lost (the client was told a clean end of a stream with a hole).
    func release() async {
        try? await channel.eventLoop.submit { [self] in releaseOnTheLoop() }.get()
    }

    private func releaseOnTheLoop() {
        if let refused = heldPushes.release() {
            let reason = TLSStreamReader.refusedReason(refused)
            if channel.isActive {
                channel.triggerUserOutboundEvent(TLSStreamReader.End(reason: reason), promise: nil)
            } else {
                // The server closed first: its `tls.end` was among what was dropped.
                StreamEnd.push(Message(headers: ["route": routes.end, "reason": reason]), to: client, pushes: heldPushes, retryingOn: channel.eventLoop)
            }
        }
        channel.triggerUserOutboundEvent(TLSStreamReader.Release(), promise: nil)
    }

    /// Closes with a TLS close_notify; no `tls.end` is pushed for a close asked for here.
    @discardableResult
    func close() -> EventLoopFuture<Void> {
        channel.close()
    }

    /// Closes as the host's doing, not the client's: `tls.end` with `reason` tells the client
    /// its stream is over (a reload that replaced the route, or a shutdown).
    func end(reason: String) -> EventLoopFuture<Void> {
        channel.triggerUserOutboundEvent(TLSStreamReader.End(reason: reason), promise: nil)
        return channel.closeFuture
    }
}

/// Takes the given critical extensions as handled: for a name checked on a chain that BoringSSL
/// has verified (`TLSConnection.certificate(of:holds:)`).
private struct ChainVerifiedAlready: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier]

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult { .meetsPolicy }
}
