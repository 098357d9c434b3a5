import Foundation
import ArgumentParser
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The peers the load tool compares the host with: a bare SwiftNIO WebSocket echo server (NIO's
/// own upgrader and frame codec, no routing) and a raw TCP echo. Prints the port it listens on.
@main
struct NIOEcho: ParsableCommand {
    @Flag(help: "Echo raw TCP bytes instead of WebSocket frames.")
    var tcp = false

    @Option(help: "Port to listen on (0: ephemeral).")
    var port = 0

    func run() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tcp = self.tcp
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if tcp {
                        try channel.pipeline.syncOperations.addHandler(TCPEcho())
                    } else {
                        let upgrader = NIOWebSocketServerUpgrader(
                            maxFrameSize: 1 << 24,
                            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                            upgradePipelineHandler: { channel, _ in
                                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(WebSocketEcho()) }
                            }
                        )
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                        )
                    }
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .wait()
        // Written unbuffered: stdout is a file or pipe when a script starts the peer.
        FileHandle.standardOutput.write(Data("{\"port\":\(channel.localAddress!.port!)}\n".utf8))
        try channel.closeFuture.wait()
    }
}

private final class TCPEcho: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

private final class WebSocketEcho: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text:
            context.write(wrapOutboundOut(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)), promise: nil)
        case .ping:
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: frame.unmaskedData)))
                .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}
