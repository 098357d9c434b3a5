import ConduitClient
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// A scripted stand-in for the host, for what the real one never does on cue (a greeting held
/// back): a WebSocket listener that upgrades every request and hands each socket to the test,
/// which sends it messages and reads what the client sent.
final class FakeWebSocketHost: Sendable {
    let port: Int
    private let server: any Channel
    /// Every socket opened, in order.
    private let opened: NIOLockedValueBox<[FakeSocket]>
    /// Each upgrade's request target, in order.
    private let targets: NIOLockedValueBox<[String]>

    private init(server: any Channel, opened: NIOLockedValueBox<[FakeSocket]>, targets: NIOLockedValueBox<[String]>) {
        self.server = server
        self.port = server.localAddress?.port ?? 0
        self.opened = opened
        self.targets = targets
    }

    /// The request targets of the upgrades so far.
    var upgradeTargets: [String] { targets.withLockedValue { $0 } }

    static func start(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> FakeWebSocketHost {
        let opened = NIOLockedValueBox<[FakeSocket]>([])
        let targets = NIOLockedValueBox<[String]>([])
        let upgrader = NIOWebSocketServerUpgrader(
            shouldUpgrade: { channel, head in
                targets.withLockedValue { $0.append(head.uri) }
                return channel.eventLoop.makeSucceededFuture([:])
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    let socket = FakeSocket(channel: channel)
                    try channel.pipeline.syncOperations.addHandler(FrameCollector(socket: socket))
                    opened.withLockedValue { $0.append(socket) }
                }
            })
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FakeWebSocketHost(server: server, opened: opened, targets: targets)
    }

    /// The `index`th socket a client opened (from 0), once it is open.
    func socket(_ index: Int) async throws -> FakeSocket {
        try await waitUntil { self.opened.withLockedValue { $0.count > index } }
        return opened.withLockedValue { $0[index] }
    }

    /// A resuming client of this host that reconnects at once, and falls back to `ipc`'s events
    /// stream when one is given.
    func resumingClient(id: String, ipc: FakeIPCHost? = nil) -> Conduit {
        Conduit(
            id: id, address: HostAddress(port: port, ipcPort: ipc?.port, sharedKey: "fake-host-key"),
            backoff: Backoff(initialDelay: .milliseconds(1), maxDelay: .milliseconds(5)), resume: true)
    }

    /// A resuming client of this host, connected, its socket, and how many messages it delivered.
    func connectedResumingClient(id: String) async throws -> (Conduit, FakeSocket, Deliveries) {
        let conduit = resumingClient(id: id)
        let delivered = Deliveries()
        conduit.receive { _ in delivered.count.add(1, ordering: .relaxed) }
        try await conduit.connect()
        return (conduit, try await socket(0), delivered)
    }

    func stop() async throws {
        try await server.close()
    }
}

/// Messages a client handed to its receive handler.
final class Deliveries: Sendable {
    let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
}

/// One upgraded socket of the fake host.
final class FakeSocket: Sendable {
    let channel: any Channel
    /// The client's messages, decoded, in order.
    let received = NIOLockedValueBox<[Message]>([])

    init(channel: any Channel) {
        self.channel = channel
    }

    func send(_ headers: Headers) async throws {
        try await send([headers])
    }

    /// Sends messages as frames flushed together: a client that gives the socket up after one
    /// of them can't fail the write of the rest.
    func send(_ messages: [Headers]) async throws {
        var written: [EventLoopFuture<Void>] = []
        for headers in messages {
            var buffer = ByteBuffer()
            try Message(headers: headers).encode(into: &buffer)
            written.append(channel.write(WebSocketFrame(fin: true, opcode: .binary, data: buffer)))
        }
        channel.flush()
        for write in written { try await write.get() }
    }

    /// A binary frame that is no Conduit message: nine headers announced, the first cut short.
    func sendUndecodableFrame() async throws {
        try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: [9, 9, 9])))
    }

    /// A `conduit.resume` greeting of epoch `e1` (SPEC §9).
    func greet(resumed: Int = 0, ack: Int = 0, reset: Bool = false) async throws {
        var headers: Headers = [
            "route": "conduit.resume", "epoch": "e1", "resumed": "\(resumed)", "replayed": "0", "lost": "0", "ack": "\(ack)",
        ]
        if reset { headers.append("reset", "true") }
        try await send(headers)
    }

    func close() async throws {
        try await channel.close()
    }

    /// Drops the connection as a killed host or a network failure does: a TCP reset (a zero
    /// linger), no close frame.
    func reset() async throws {
        try await channel.closeWithReset().get()
    }
}

private final class FrameCollector: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    private let socket: FakeSocket

    init(socket: FakeSocket) {
        self.socket = socket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.opcode == .binary, let message = try? Message(decoding: frame.unmaskedData) else { return }
        socket.received.withLockedValue { $0.append(message) }
    }
}
