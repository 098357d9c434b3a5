import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

/// A TCP proxy for chaos tests: forwards every connection to `127.0.0.1:targetPort`, and
/// `cutAll()` resets them all at once (RST both ways), so what is in flight is lost the way
/// a dropped network loses it, not handed over by a close handshake.
public final class ChaosProxy: Sendable {
    public let port: Int
    private let listener: any Channel
    private let pairs = NIOLockedValueBox<[ObjectIdentifier: (any Channel, any Channel)]>([:])

    private init(listener: any Channel) {
        self.listener = listener
        self.port = listener.localAddress!.port!
    }

    /// `delay`: each connection is joined to the target that much later (until then what the
    /// client sends waits): a slow network, or a slow server.
    public static func start(
        targetPort: Int, delay: TimeAmount = .zero, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ChaosProxy {
        let proxy = NIOLockedValueBox<ChaosProxy?>(nil)
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                proxy.withLockedValue { $0 }?.acceptedCount.withLockedValue { $0 += 1 }
                return inbound.eventLoop.scheduleTask(in: delay) {}.futureResult
                    .flatMap { ClientBootstrap(group: inbound.eventLoop).connect(host: "127.0.0.1", port: targetPort) }
                    .flatMap { outbound in
                        proxy.withLockedValue { $0 }?.joined(inbound, outbound)
                        return inbound.pipeline.addHandler(Forwarder(to: outbound)).flatMap {
                            outbound.pipeline.addHandler(Forwarder(to: inbound))
                        }.flatMap { inbound.setOption(.autoRead, value: true) }
                    }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let started = ChaosProxy(listener: listener)
        proxy.withLockedValue { $0 = started }
        return started
    }

    private func joined(_ inbound: any Channel, _ outbound: any Channel) {
        pairs.withLockedValue { $0[ObjectIdentifier(inbound)] = (inbound, outbound) }
        joinedCount.withLockedValue { $0 += 1 }
        inbound.closeFuture.whenComplete { [self] _ in
            _ = pairs.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(inbound)) }
        }
    }

    /// Connections joined to the target and not closed or cut.
    public var open: Int { pairs.withLockedValue { $0.count } }

    /// Connections taken in so far, joined to the target yet or not (`delay`).
    public var accepted: Int { acceptedCount.withLockedValue { $0 } }
    private let acceptedCount = NIOLockedValueBox(0)

    /// Connections joined to the target so far, open or not.
    public var joined: Int { joinedCount.withLockedValue { $0 } }
    private let joinedCount = NIOLockedValueBox(0)

    /// Resets every proxied connection now; returns how many there were.
    @discardableResult
    public func cutAll() -> Int {
        let cut = pairs.withLockedValue { pairs in
            defer { pairs.removeAll() }
            return Array(pairs.values)
        }
        for (inbound, outbound) in cut {
            for channel in [inbound, outbound] { _ = channel.closeWithReset() }
        }
        return cut.count
    }

    public func stop() async throws {
        cutAll()
        try await listener.close()
    }
}

/// Writes what one side reads to the other; closes the other when this one closes.
private final class Forwarder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let peer: any Channel

    init(to peer: any Channel) {
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
