import NIOCore
import Synchronization

/// The order the listener accepted its connections in, taken on the listening channel's own
/// event loop (each connection is then set up on its own loop, where the order can invert). An
/// id's socket is replaced only by one that arrived later (`ClientDirectory.attach`): a
/// connection the network cut while its handshake was under way could otherwise finish it after
/// the client's next socket, replace that live socket, and leave the client told "replaced"
/// (which it does not reconnect from) with only the dead one on the host.
final class ArrivalOrder: Sendable {
    private let state = Mutex<(next: UInt64, accepted: [ObjectIdentifier: UInt64])>((1, [:]))

    /// Numbers each connection the listener accepts; first in the listening channel's pipeline.
    final class Stamp: ChannelInboundHandler, Sendable {
        typealias InboundIn = any Channel
        private let order: ArrivalOrder

        init(_ order: ArrivalOrder) {
            self.order = order
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let child = unwrapInboundIn(data)
            order.state.withLock { state in
                state.accepted[ObjectIdentifier(child)] = state.next
                state.next += 1
            }
            context.fireChannelRead(data)
        }
    }

    /// `channel`'s place in the order, taken (once) when it is set up; 0 for one never numbered.
    func take(_ channel: any Channel) -> UInt64 {
        state.withLock { $0.accepted.removeValue(forKey: ObjectIdentifier(channel)) } ?? 0
    }
}
