public import ConduitKit
import ConduitWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `udp.*`: UDP sockets for WebSocket clients, on SwiftNIO's `DatagramBootstrap`.
///
/// Each client id owns at most one socket: the socket id *is* the client id, as in the
/// runtime's dgram module, so a client that reconnects with the same id finds its socket.
/// Routes: `udp.bind`, `udp.connect`, `udp.disconnect`, `udp.send`, `udp.readStart`,
/// `udp.readStop`, `udp.close`, `udp.getState`. While reading, every datagram becomes a push
/// to the id with headers `address` and `port` and the datagram as payload.
///
/// How it follows the seed's integration guidelines:
/// - *Receive before commands*: datagrams are pushes, so a client registers `receive` before
///   `udp.readStart`; nothing is read before it asks.
/// - *Graceful degradation*: every failure (port in use, bad address, oversize datagram,
///   unknown socket) is an error reply; the host and other sockets carry on.
/// - *`reopen` handling / stable ids*: a disconnect keeps the socket and its reads (pushes
///   are buffered by the host for the id); a client that reconnects with the same id gets the
///   datagrams of the gap in order. Only `ClientEvent.expired` (the id stayed away for the
///   host's grace period, `limits.clientGraceSeconds`) closes its socket.
/// - *Pause/resume aware*: while the host is paused ids don't expire, so reads survive a pause
///   and what arrives meanwhile waits in the id's buffer.
public final class UDPHandler: ConduitHandler {
    public struct Options: HandlerOptions {
        /// Largest datagram `udp.send` accepts and a read takes whole (IPv4's UDP limit by
        /// default; the kernel cuts a longer one received to this size). Smaller values let one
        /// read system call take more datagrams.
        public var maxDatagramBytes = 65_507
        /// Kernel receive buffer per socket, so bursts wait in the kernel, not on the floor.
        public var receiveBufferBytes = 4 << 20
        /// Address `udp.bind` uses when the request names none.
        public var defaultBindAddress = "127.0.0.1"
        /// Sockets open (or binding) at once, for all ids: each holds a descriptor and its read
        /// buffer, and any client with the key may name as many ids as it likes.
        public var maxSockets = 1024

        public init() {}

        public func validate() throws(InvalidOption) {
            guard (1...65_507).contains(maxDatagramBytes) else { throw InvalidOption("maxDatagramBytes", "must be 1…65507") }
            // The kernel takes an Int32: a larger value would trap at the first bind.
            guard (1024...(1 << 30)).contains(receiveBufferBytes) else {
                throw InvalidOption("receiveBufferBytes", "must be 1024 to 1073741824")
            }
            guard (1...1_000_000).contains(maxSockets) else { throw InvalidOption("maxSockets", "must be 1 to 1000000") }
            guard (try? SocketAddress(ipAddress: defaultBindAddress, port: 0)) != nil else {
                throw InvalidOption("defaultBindAddress", "must be an IPv4 or IPv6 address")
            }
        }
    }

    /// The read buffer of one socket, kept by NIO for the socket's life: one recvmmsg call
    /// takes as many datagrams as fit with room for `maxDatagramBytes` each (NIO divides the
    /// buffer evenly), at most 32. One at the default 65,507; 32 up to 2,047 and 31 at 2,048
    /// (each datagram's room is one byte more). Not 32 rooms of 2,049 bytes: NIO rounds a
    /// buffer up to a power of two, and that took 128 KiB a socket, not 64. Larger buffers read
    /// faster (8 per read: 205k datagrams/s, 1: 100k) but cost every bound socket that much
    /// memory: 512 KiB took a 200-client soak from 101 to 153 MB.
    private static let readBufferBytes = 64 << 10
    private var datagramsPerRead: Int { min(32, max(1, Self.readBufferBytes / datagramRoom)) }
    /// The room each datagram is read into: one byte more than the limit, so that a longer
    /// datagram (cut by the kernel to its room, which NIO does not report) shows as longer and
    /// is dropped whole rather than pushed cut.
    private var datagramRoom: Int { options.maxDatagramBytes + 1 }

    private let options: Options
    private let context: HandlerContext
    private let sockets = NIOLockedValueBox(Sockets())

    /// Sockets open at once: the option, within a quarter of the process's descriptor limit,
    /// as waiting handshakes and IPC connections are: each socket holds a descriptor, and
    /// binds over IPC alone took every one the host had left, so no client could connect.
    private let maxSockets: Int
    private let totals: UDPTotals

    /// The open sockets by id, and the binds under way (they count against `maxSockets`).
    private struct Sockets {
        var open: [ClientID: UDPSocket] = [:]
        /// By ticket: the id binding, and whether it expired meanwhile (its socket, bound
        /// after its expiry closed what it had, would be closed by nothing).
        var binding: [Int: (client: ClientID, expired: Bool)] = [:]
        var nextTicket = 0
        /// The handler stopped (a reload took its route): a bind under way then is undone.
        var stopped = false
    }

    public init(options: Options, context: HandlerContext) throws {
        self.options = options
        self.context = context
        self.maxSockets = min(options.maxSockets, max(1, DescriptorLimit.current / 4))
        self.totals = UDPTotals(route: context.route, metrics: context.metrics)
    }

    public func handle(_ request: Request, responder: Responder) throws {
        switch request.operation {
        case "bind": try bind(request, responder)
        case "connect": try socket(of: request).connect(to: try address(in: request, required: true)!, responder)
        case "disconnect": try socket(of: request).disconnect(responder)
        case "send": try send(request, responder)
        case "readStart": try socket(of: request).setReading(true, responder)
        case "readStop": try socket(of: request).setReading(false, responder)
        case "close": try close(request.client, responder)
        case "getState": try socket(of: request).replyWithState(responder)
        default: throw ConduitError.notFound("no UDP operation '\(request.route)'")
        }
    }

    public func clientEvent(_ event: ClientEvent) {
        guard case .expired(let client) = event else { return }
        let socket = sockets.withLockedValue { sockets in
            for (ticket, bind) in sockets.binding where bind.client == client { sockets.binding[ticket]!.expired = true }
            return sockets.open.removeValue(forKey: client)
        }
        socket?.close()
    }

    public func stop() async {
        let open = sockets.withLockedValue { sockets in
            sockets.stopped = true
            defer { sockets.open = [:] }
            return sockets.open
        }
        // Each id is told: its socket and its reads are gone until it binds again.
        for (client, socket) in open {
            socket.close()
            socket.end(for: client, reason: "the UDP route's handler stopped (a reload changed it, or the host is shutting down): bind again")
        }
    }

    public var diagnostics: [String: DiagnosticValue]? {
        let open = sockets.withLockedValue { Array($0.open.values) }
        return totals.diagnostics(open: open)
    }

    // MARK: Operations

    private func bind(_ request: Request, _ responder: Responder) throws {
        let client = request.client
        guard let port = Int(request.headers["port"] ?? "0"), (0...65_535).contains(port) else {
            throw ConduitError.badRequest("'port' must be 0…65535 (0 picks a free port)")
        }
        let address = try Self.socketAddress(request.headers["address"] ?? options.defaultBindAddress, port: port)
        let ticket = try sockets.withLockedValue { sockets throws(ConduitError) -> Int in
            guard !sockets.stopped else { throw Self.stopped }
            guard sockets.open[client] == nil else {
                throw .badRequest("client '\(client)' already has a UDP socket; \(context.route("close")) it first")
            }
            guard sockets.open.count + sockets.binding.count < maxSockets else {
                throw .unavailable("the host has \(maxSockets) UDP sockets open (\(maxSocketsOrigin))")
            }
            defer { sockets.nextTicket += 1 }
            sockets.binding[sockets.nextTicket] = (client, false)
            return sockets.nextTicket
        }
        let counters = UDPSocket.Counters(totals: totals)
        let reader = DatagramReader(client: client, pushes: context.pushes, counters: counters, route: context.route("data"), maxDatagramBytes: options.maxDatagramBytes)
        // On the requesting connection's event loop: its pushes are then written at once,
        // with no hop to another thread (after a reconnect on another loop, the host's push
        // buffer carries them over).
        DatagramBootstrap(group: request.eventLoop)
            .channelOption(.socketOption(.so_rcvbuf), value: .init(options.receiveBufferBytes))
            // NIO's default room per datagram is 2 KiB, which silently cut longer ones.
            .channelOption(.datagramVectorReadMessageCount, value: datagramsPerRead)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: datagramsPerRead * datagramRoom))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(reader) }
            }
            .bind(to: address)
            .whenComplete { [sockets, options, pushes = context.pushes, endRoute = context.route("end")] result in
                switch result {
                case .success(let channel):
                    let socket = UDPSocket(channel: channel, reader: reader, counters: counters, pushes: pushes, route: endRoute, maxDatagramBytes: options.maxDatagramBytes)
                    // Another bind of the id, its expiry or the handler's stop came first: undone.
                    let refusal = sockets.withLockedValue { sockets -> ConduitError? in
                        let expired = sockets.binding.removeValue(forKey: ticket)?.expired ?? false
                        guard !sockets.stopped else { return Self.stopped }
                        guard !expired else { return .unavailable("client '\(client)' expired while its socket was being bound: bind again") }
                        guard sockets.open[client] == nil else { return .badRequest("client '\(client)' already has a UDP socket") }
                        sockets.open[client] = socket
                        return nil
                    }
                    if let refusal {
                        socket.close()
                        responder.fail(refusal)
                    } else {
                        // Closed under the handler (NIO closes it on most send errors): the id
                        // may bind again, nothing reports a dead socket as reading, and its
                        // reader is told, as a stream's is.
                        channel.closeFuture.whenComplete { _ in
                            let closedUnder = sockets.withLockedValue { $0.open[client] === socket ? $0.open.removeValue(forKey: client) != nil : false }
                            if closedUnder { socket.end(for: client, reason: socket.closedBy) }
                        }
                        responder.reply(json: socket.state)
                    }
                case .failure(let error):
                    sockets.withLockedValue { _ = $0.binding.removeValue(forKey: ticket) }
                    responder.fail(UDPError.bindFailed(address, error))
                }
            }
    }

    private var maxSocketsOrigin: String {
        maxSockets < options.maxSockets ? "a quarter of the process's descriptor limit, \(DescriptorLimit.current)" : "the udp option maxSockets"
    }

    private static let stopped = ConduitError.unavailable("the UDP route's handler stopped (a reload or the shutdown); bind again")

    private func send(_ request: Request, _ responder: Responder) throws {
        let socket = try socket(of: request)
        try socket.send(request.payload, to: try address(in: request, required: false), responder)
    }

    private func close(_ client: ClientID, _ responder: Responder) throws {
        guard let socket = sockets.withLockedValue({ $0.open.removeValue(forKey: client) }) else {
            throw ConduitError.notFound("client '\(client)' has no UDP socket")
        }
        socket.close()
        responder.reply(json: ["closed": true])
    }

    private func socket(of request: Request) throws -> UDPSocket {
        guard let socket = sockets.withLockedValue({ $0.open[request.client] }) else {
            throw ConduitError.notFound("client '\(request.client)' has no UDP socket; call \(context.route("bind")) first")
        }
        return socket
    }

    /// The `address`/`port` headers as a socket address; nil when both are absent and optional.
    private func address(in request: Request, required: Bool) throws -> SocketAddress? {
        let host = request.headers["address"]
        let port = request.headers["port"]
        if host == nil, port == nil, !required { return nil }
        guard let host, let portText = port else {
            throw ConduitError.badRequest("'\(request.route)' needs both 'address' and 'port'")
        }
        guard let port = Int(portText), (1...65_535).contains(port) else {
            throw ConduitError.badRequest("'port' must be 1…65535, not '\(portText)'")
        }
        return try Self.socketAddress(host, port: port)
    }

    /// An IP address and port; a name is refused, not resolved: resolving blocks the event loop
    /// (every connection on it) for as long as the resolver takes.
    private static func socketAddress(_ host: String, port: Int) throws -> SocketAddress {
        do {
            return try SocketAddress(ipAddress: host, port: port)
        } catch {
            throw ConduitError.badRequest("'\(host)' is not an IPv4 or IPv6 address")
        }
    }
}
