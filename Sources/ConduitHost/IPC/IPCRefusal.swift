import ConduitKit
import NIOCore
import NIOHTTP1

/// Answers a request refused before its body is read, and closes the connection once the
/// answer is out; nothing more from the caller is read. Counted in `metrics` as an error
/// answer (`conduit_errors_total`) when given: a refusal for the key has a count of its own.
enum IPCRefusal {
    static func send(
        _ status: HTTPResponseStatus, _ error: ConduitError, headers extra: HTTPHeaders = [:], countedIn metrics: HostMetrics?, context: ChannelHandlerContext
    ) {
        metrics?.errorReplied(type: error.kind.name)
        _ = context.channel.setOption(.autoRead, value: false)
        let body = error.payload
        var headers: HTTPHeaders = ["content-type": "application/json", "content-length": "\(body.readableBytes)", "connection": "close"]
        headers.add(contentsOf: extra)
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
