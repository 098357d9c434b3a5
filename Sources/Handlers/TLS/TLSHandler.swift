public import ConduitKit
import ConduitWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// `tls.*`: a TLS client bridge for WebSocket clients, on SwiftNIO SSL, and a local TLS echo
/// service to bridge to.
///
/// Each client id owns at most one TLS connection: the connection id *is* the client id, as
/// the UDP socket id is, so a client that reconnects with the same id finds its connection,
/// and no second id has to be kept or leaked. Routes: `tls.connect` (headers `host`, `port`,
/// optional `servername` and `insecure`; payload: optional PEM CA certificates to trust),
/// `tls.write` (payload: bytes to send), `tls.close`, `tls.echoService` (the echo service's
/// host, port and certificate). What the server sends is pushed to the id as `route: tls.data`
/// (payload: the bytes, in order); the server's close as `route: tls.end`.
///
/// How it follows the seed's integration guidelines:
/// - *Receive before commands*: data and the end of the stream are pushes, which may arrive
///   before the `tls.connect` reply; a client registers `receive` before it connects.
/// - *Graceful degradation*: every failure (refused connection, untrusted certificate, failed
///   handshake, unknown or closed connection) is an error reply with a sentence saying what
///   to change; the host and other connections carry on.
/// - *`reopen` handling / stable ids*: a disconnect of the id keeps its connection, and what
///   the server sends meanwhile waits in the id's push buffer; a client that reconnects with
///   the same id (a `reopen`) reads on without reissuing anything. Only `ClientEvent.expired`
///   (the id stayed away for `limits.clientGraceSeconds`) or `stop()` closes the connection.
/// - *Pause/resume aware*: while the host is paused ids don't expire, so connections survive
///   a pause and the bytes that arrive wait in the id's buffer; while it is congested the
///   connection is not read (`TLSStreamReader`), so the server is held back, not dropped.
public final class TLSHandler: ConduitHandler {
    public typealias Options = TLSOptions

    private let options: TLSOptions
    private let context: HandlerContext
    private let trust: TLSTrust
    private let connections = NIOLockedValueBox<[ClientID: TLSConnection]>([:])
    /// Connections open or opening, bounded by `maxConnections`.
    private let inUse = NIOLockedValueBox(0)
    /// Connects under way per id, and whether the id expired meanwhile: a connection that
    /// opens for an id gone is closed, as nothing else ever would (over IPC nothing cancels
    /// its request when the id goes).
    private let opening = NIOLockedValueBox<[ClientID: (count: Int, expired: Bool)]>([:])
    private let echoService = NIOLockedValueBox<TLSEchoService?>(nil)
    private let echoIdentity: TLSEchoService.Identity?

    public init(options: TLSOptions, context: HandlerContext) throws {
        self.options = options
        self.context = context
        trust = try TLSTrust(options: options)
        echoIdentity = try TLSEchoService.configuredIdentity(options.echoService)
    }

    public func start() async throws {
        guard options.echoService.enabled else { return }
        let service = try await TLSEchoService.start(
            options.echoService, configured: echoIdentity, route: context.route, group: context.eventLoopGroup)
        echoService.withLockedValue { $0 = service }
        context.logger.info("tls echo service listening", metadata: [
            "tls.echo.host": "\(service.host)", "tls.echo.port": "\(service.port)",
        ])
    }

    public func stop() async {
        let open = connections.withLockedValue { connections in
            defer { connections.removeAll() }
            return connections.values
        }
        // All at once: each waits for its server's close_notify. The clients are told: a
        // reload that replaced the route ended their streams without a word.
        let reason = "the route \(context.route) stopped (a reload replaced it, or the host is shutting down)"
        for closing in open.map({ $0.end(reason: reason) }) {
            try? await closing.get()
        }
        await echoService.withLockedValue { $0.take() }?.stop()
    }

    public func handle(_ request: Request, responder: Responder) throws {
        switch request.operation {
        case "connect": try connect(request, responder)
        case "write": try connection(of: request.client).write(request.payload, responder)
        case "close": try close(request.client, responder)
        case "echoService": responder.reply(json: try echoServiceInfo())
        default:
            let known = ["connect", "write", "close", "echoService"].map(context.route).joined(separator: ", ")
            throw ConduitError.notFound("no TLS operation '\(request.route)'; try \(known)")
        }
    }

    public func clientEvent(_ event: ClientEvent) {
        guard case .expired(let client) = event else { return }
        // Marked first: a connect that registers after the removal below sees the mark.
        opening.withLockedValue { $0[client]?.expired = true }
        connections.withLockedValue { $0.removeValue(forKey: client) }?.close()
    }

    // MARK: Operations

    private func connect(_ request: Request, _ responder: Responder) throws {
        let client = request.client
        try ensureNoConnection(for: client)
        let endpoint = try TLSConnection.Endpoint(request)
        let insecure = try insecureRequested(request)
        let timeout = TimeAmount.fractionalSeconds(options.connectTimeoutSeconds)
        let congestionTimeout = TimeAmount.fractionalSeconds(options.congestionTimeoutSeconds)
        // Counted as opening now, while the id surely exists (its request is being handled):
        // counted in the task, an expiry before the task started (a loaded machine, a short
        // grace) marked nothing, and the connection outlived its id, open for good.
        opening.withLockedValue { $0[client, default: (0, false)].count += 1 }
        let runs = responder.respond { [self] in
            // In the task: a connect the connection's bound on running requests refuses never
            // runs it, and must take no place.
            do {
                try takePlace()
            } catch {
                _ = endOpening(client)
                throw error
            }
            let connection: TLSConnection
            do {
                // In the task: a CA of the request's own means loading the system roots again.
                let choice = try trust.choice(insecureRequested: insecure, caPEM: request.payload)
                connection = try await TLSConnection.open(
                    endpoint, for: client, trust: choice, timeout: timeout, congestionTimeout: congestionTimeout,
                    pushes: context.pushes, routes: TLSPushRoutes(context), group: context.eventLoopGroup)
                // Cancelled or timed out while it opened: the client was answered so, and the
                // connection must not outlive that answer (opening does not stop for cancellation).
                if Task.isCancelled {
                    connection.close()
                    throw CancellationError()
                }
                try register(connection, for: client)
            } catch {
                _ = endOpening(client)
                givePlaceBack()
                throw error
            }
            if endOpening(client) {
                connections.withLockedValue { if $0[client] === connection { $0[client] = nil } }
                connection.close()
                throw ConduitError.notFound("client '\(client)' expired while its TLS connection opened; the connection is closed")
            }
            context.logger.debug("tls connection opened", metadata: ["tls.client": "\(client)", "tls.server": "\(endpoint)"])
            await connection.release()
            return try .json(connection.summary)
        }
        if !runs { _ = endOpening(client) }
    }

    private func close(_ client: ClientID, _ responder: Responder) throws {
        guard let connection = connections.withLockedValue({ $0.removeValue(forKey: client) }), connection.isOpen else {
            throw ConduitError.notFound("client '\(client)' has no TLS connection")
        }
        connection.close()
        // Once closed, after what `register` set to run then (its place is given back first).
        connection.closed.whenComplete { _ in responder.reply(json: ["closed": true]) }
    }

    private func echoServiceInfo() throws -> TLSEchoService.Info {
        guard let service = echoService.withLockedValue({ $0 }) else {
            throw ConduitError.notFound("the TLS echo service is not running; enable it with the route option echoService: {enabled: true}")
        }
        return service.info
    }

    // MARK: Connections by client id

    /// The client's connection unless either side closed it: after `tls.end` a write is
    /// answered "no connection" at once, not only once the channel is fully torn down.
    private func connection(of client: ClientID) throws -> TLSConnection {
        guard let connection = connections.withLockedValue({ $0[client] }), connection.isOpen else {
            throw ConduitError.notFound("client '\(client)' has no TLS connection; call \(context.route("connect")) first")
        }
        return connection
    }

    /// A place among `maxConnections` for a connection about to open.
    private func takePlace() throws(ConduitError) {
        let taken = inUse.withLockedValue { inUse in
            guard inUse < options.maxConnections else { return false }
            inUse += 1
            return true
        }
        guard taken else { throw .unavailable("the host has \(options.maxConnections) TLS connections open (the tls option maxConnections)") }
    }

    /// A connect for `client` is over; whether the id expired while it was under way.
    private func endOpening(_ client: ClientID) -> Bool {
        opening.withLockedValue { opening in
            guard let entry = opening[client] else { return false }
            opening[client] = entry.count > 1 ? (entry.count - 1, entry.expired) : nil
            return entry.expired
        }
    }

    private func givePlaceBack() {
        inUse.withLockedValue { $0 -= 1 }
    }

    private func ensureNoConnection(for client: ClientID) throws(ConduitError) {
        guard connections.withLockedValue({ $0[client]?.isOpen }) != true else {
            throw .badRequest("client '\(client)' already has a TLS connection; \(context.route("close")) it first")
        }
    }

    /// Keeps the connection until either side closes it; a second connect that raced this one
    /// loses.
    private func register(_ connection: TLSConnection, for client: ClientID) throws(ConduitError) {
        let raced = connections.withLockedValue { connections in
            guard connections[client]?.isOpen != true else { return true }
            connections[client] = connection
            return false
        }
        if raced {
            connection.close()
            throw .badRequest("client '\(client)' already has a TLS connection; \(context.route("close")) it first")
        }
        // Also when the server closed before this line: the callback then runs at once.
        connection.closed.whenComplete { [self] _ in
            connections.withLockedValue { connections in
                if connections[client] === connection { connections[client] = nil }
            }
            givePlaceBack()
        }
    }

    private func insecureRequested(_ request: Request) throws(ConduitError) -> Bool {
        switch request.headers.typed("insecure") {
        case nil, .bool(false)?: false
        case .bool(true)?: true
        default: throw .badRequest("'insecure' must be true or false")
        }
    }
}
