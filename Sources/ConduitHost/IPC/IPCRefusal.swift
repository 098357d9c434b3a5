import ConduitKit
import NIOCore
import NIOHTTP1

/// Answers a request refused before its body is read, and closes the connection once the
/// answer is out; nothing more from the caller is read.
enum IPCRefusal {
    static func send(_ status: HTTPResponseStatus, _ error: ConduitError, context: ChannelHandlerContext) {
        _ = context.channel.setOption(.autoRead, value: false)
        let body = error.payload
        let headers: HTTPHeaders = ["content-type": "application/json", "content-length": "\(body.readableBytes)", "connection": "close"]
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
