import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The HTTP → WebSocket upgrade: NIO's upgrader checks the handshake and builds the 101
/// (RFC 6455 §4.2), then `install` puts this host's own frame handler on the channel in place
/// of NIO's frame codec, which would add four handlers and an allocation per frame.
struct WebSocketUpgrader: HTTPServerProtocolUpgrader, Sendable {
    let handshake: NIOWebSocketServerUpgrader
    let install: @Sendable (any Channel) throws -> Void

    var supportedProtocol: String { handshake.supportedProtocol }
    var requiredUpgradeHeaders: [String] { handshake.requiredUpgradeHeaders }

    func buildUpgradeResponse(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        handshake.buildUpgradeResponse(channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        return context.eventLoop.makeCompletedFuture { try install(channel) }
    }
}
