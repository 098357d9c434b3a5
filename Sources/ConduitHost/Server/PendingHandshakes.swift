import NIOConcurrencyHelpers
import NIOCore

/// What connections that have not completed their WebSocket handshake may cost, key or no
/// key: how many may wait at once and the bytes one may send before its upgrade (past them it
/// is answered 431 and closed). Without them, 2,000 connections that each sent 79 KB of an
/// unfinished head took 264 MB of the host's memory until their handshake timeout, bounded
/// only by the descriptor limit.
///
/// Past the bound the oldest waiting connection is closed to make room, not the new one: a
/// client that completes its handshake in a millisecond then gets through a flood of
/// connections that never do, unless the flood opens `limit` of them within that millisecond.
final class PendingHandshakes: Sendable {
    let limit: Int
    let maxBytes: Int
    private let metrics: HostMetrics
    /// The waiting connections by the order they came in.
    private let waiting = NIOLockedValueBox(Waiting())

    private struct Waiting {
        var nextOrder: UInt64 = 0
        var channels: [UInt64: any Channel] = [:]
    }

    init(limit: Int, maxBytes: Int, metrics: HostMetrics) {
        self.limit = limit
        self.maxBytes = maxBytes
        self.metrics = metrics
    }

    /// Takes a place for `channel`, closing the oldest waiting connection when all are taken;
    /// returns the guard to put first in its pipeline until the upgrade.
    func admit(_ channel: any Channel) -> Guard {
        let (order, evicted) = waiting.withLockedValue { waiting -> (UInt64, (any Channel)?) in
            // A linear search, only while full: a flood's cost, not a client's.
            let evicted = waiting.channels.count < limit ? nil : waiting.channels.keys.min().flatMap { waiting.channels.removeValue(forKey: $0) }
            let order = waiting.nextOrder
            waiting.nextOrder += 1
            waiting.channels[order] = channel
            return (order, evicted)
        }
        if let evicted {
            metrics.handshakeRefused(.evicted)
            evicted.close(promise: nil)
        }
        return Guard(pending: self, order: order)
    }

    /// Connections waiting for their handshake now.
    var count: Int { waiting.withLockedValue { $0.channels.count } }

    /// Closes every connection still waiting for its upgrade: a pause closes every socket, and
    /// one accepted before it would otherwise be upgraded after the next start, on a port no
    /// longer listened to. (Each gives its place back as it closes.)
    func closeAll() {
        let channels = waiting.withLockedValue { Array($0.channels.values) }
        for channel in channels { channel.close(promise: nil) }
    }

    fileprivate func release(_ order: UInt64) {
        _ = waiting.withLockedValue { $0.channels.removeValue(forKey: order) }
    }

    /// Counts the bytes that arrive before the upgrade, and gives the connection's place back
    /// when it is removed: at the upgrade, or when the connection closes before it.
    final class Guard: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        static let name = "conduit.pending-handshake"

        private let pending: PendingHandshakes
        private let order: UInt64
        private var received = 0
        private var refused = false

        fileprivate init(pending: PendingHandshakes, order: UInt64) {
            self.pending = pending
            self.order = order
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !refused else { return }
            received += unwrapInboundIn(data).readableBytes
            guard received > pending.maxBytes else { return context.fireChannelRead(data) }
            refused = true
            pending.metrics.handshakeRefused(.headTooLarge)
            let reason = "the handshake is larger than \(pending.maxBytes) bytes\n"
            var response = context.channel.allocator.buffer(capacity: 160)
            response.writeString(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    + "content-length: \(reason.utf8.count)\r\nconnection: close\r\n\r\n\(reason)")
            context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            pending.release(order)
        }
    }
}

/// Why a connection's handshake was refused (`conduit_handshakes_refused_total`): a count of
/// `key` that climbs is someone guessing the shared key.
enum HandshakeRefusal: String, CaseIterable, Sendable {
    /// The oldest waiting connection, closed to make room for a new one.
    case evicted = "evicted-oldest"
    case headTooLarge = "head-too-large"
    /// Not a WebSocket upgrade (RFC 6455 §4.2.1), or another version.
    case notAnUpgrade = "not-an-upgrade"
    case origin
    /// A missing or wrong shared key.
    case key
    /// A path or query the host can't take (ids, `resume`).
    case badRequest = "bad-request"
    /// A new id, and no place for it (`limits.maxClients`).
    case noPlace = "no-place"
}
