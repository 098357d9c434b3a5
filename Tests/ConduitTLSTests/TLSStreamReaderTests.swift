@testable import ConduitTLS
import ConduitKit
import ConduitWire
import Logging
import NIOCore
import NIOEmbedded
import NIOTLS
import Synchronization
import Testing

/// The stream's reader on its own, fed reads as the TLS layer would give them.
@Suite("TLS stream reader")
struct TLSStreamReaderTests {
    /// A client's queue that refuses a payload past `refusingOver` bytes and takes the rest.
    final class RefusingSink: PushSink {
        let refusingOver: Int
        private let accepted = Mutex<[Message]>([])
        init(refusingOver: Int) { self.refusingOver = refusingOver }

        var messages: [Message] { accepted.withLock { $0 } }

        func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome {
            guard message.payload.readableBytes <= refusingOver else { return .dropped(.queueFull) }
            accepted.withLock { $0.append(message) }
            return .sent
        }
        func isConnected(_ client: ClientID) -> Bool { true }
        func isCongested(_ client: ClientID) -> Bool { false }
        func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) { body() }
    }

    /// Closes later, as NIOSSL does once its close_notify went out: the reader sees the rest
    /// of the turn's reads before the channel is inactive.
    final class DeferredClose: ChannelOutboundHandler {
        typealias OutboundIn = Any
        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            context.eventLoop.assumeIsolated().execute { context.close(mode: mode, promise: promise) }
        }
    }

    /// A channel whose reader (pushing to `pushes`) has seen its handshake complete.
    private static func channelPastItsHandshake(pushingTo pushes: any PushSink) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let context = HandlerContext(route: "tls.*", logger: Logger(label: "test"), pushes: pushes, eventLoopGroup: channel.eventLoop)
        let reader = TLSStreamReader(
            client: ClientID("stream-client")!, pushes: pushes, routes: TLSPushRoutes(context),
            handshake: channel.eventLoop.makePromise(), congestionTimeout: .seconds(5))
        try channel.pipeline.syncOperations.addHandlers([DeferredClose(), reader])
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        return channel
    }

    /// Two reads in one turn, the first held and then refused by the client's queue: the
    /// stream ended, yet the second read was kept and pushed after it (smaller, it fit), so
    /// the client got the bytes after a hole, then `tls.end`.
    @Test func nothingIsPushedAfterAPushWasRefused() throws {
        let sink = RefusingSink(refusingOver: 40_000)
        let channel = try Self.channelPastItsHandshake(pushingTo: sink)
        // Reads, then their turn's end (`writeInbound` would end a turn after each).
        channel.pipeline.fireChannelRead(ByteBuffer(repeating: 0x41, count: 50_000))
        channel.pipeline.fireChannelRead(ByteBuffer(repeating: 0x42, count: 30_000))
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.run()
        let data = sink.messages.filter { $0.headers.route == "tls.data" }
        #expect(data.isEmpty, "bytes after the refused push reached the client: \(data.map(\.payload.readableBytes))")
        let end = sink.messages.last
        #expect(end?.headers.route == "tls.end" && end?.headers["reason"]?.contains("can't take more") == true, "\(String(describing: end?.headers))")
    }

    /// What the server sends from the handshake on waits until the connection is the client's
    /// (checked, registered): pushed at once, a server that failed the name check got its
    /// plaintext to the client. Released, it goes in order; once a close is asked for here,
    /// nothing more goes (a cancelled connect's bytes went into the id's next stream).
    @Test func nothingIsPushedBeforeTheReleaseNorAfterACloseAskedForHere() throws {
        let sink = RefusingSink(refusingOver: .max)
        let held = TLSHeldPushes(sink)
        let channel = try Self.channelPastItsHandshake(pushingTo: held)
        channel.pipeline.fireChannelRead(ByteBuffer(string: "first "))
        channel.pipeline.fireChannelReadComplete()
        #expect(sink.messages.isEmpty, "pushed before the release: \(sink.messages.map { String(buffer: $0.payload) })")
        #expect(held.release() == nil)
        channel.pipeline.fireChannelRead(ByteBuffer(string: "second"))
        channel.pipeline.fireChannelReadComplete()
        #expect(sink.messages.map { String(buffer: $0.payload) } == ["first ", "second"])
        channel.pipeline.close(promise: nil)
        channel.pipeline.fireChannelRead(ByteBuffer(string: "after the close"))
        channel.pipeline.fireChannelReadComplete()
        channel.embeddedEventLoop.run()
        #expect(sink.messages.map { String(buffer: $0.payload) } == ["first ", "second"], "nothing after a close asked for here, not even tls.end")
    }

    /// A host budget full while the id's queue is empty: `whenWritable` calls back at once, and
    /// the retried `tls.end` was pushed again inside that call, refused, and so on: a
    /// recursion without end (a crash) for as long as the budget stayed full. Each try now
    /// waits a pause on the event loop.
    @Test func aRefusedEndIsTriedAgainAfterAPauseNotAtOnce() {
        final class FullBudget: PushSink {
            private let state = Mutex((refusals: 3, attempts: 0, accepted: [Message]()))
            var attempts: Int { state.withLock { $0.attempts } }
            var accepted: [Message] { state.withLock { $0.accepted } }
            func push(_ message: Message, to client: ClientID, delivery: PushDelivery) -> PushOutcome {
                state.withLock { state in
                    state.attempts += 1
                    guard state.refusals == 0 else {
                        state.refusals -= 1
                        return .dropped(.hostBudget)
                    }
                    state.accepted.append(message)
                    return .sent
                }
            }
            func isConnected(_ client: ClientID) -> Bool { true }
            func isCongested(_ client: ClientID) -> Bool { false }
            func whenWritable(_ client: ClientID, _ body: @escaping @Sendable () -> Void) { body() }
        }
        let sink = FullBudget()
        let loop = EmbeddedEventLoop()
        StreamEnd.push(Message(headers: ["route": "tls.end"]), to: ClientID("budget")!, pushes: sink, retryingOn: loop)
        #expect(sink.attempts == 1, "tried again inside the refusal")
        loop.advanceTime(by: StreamEnd.retryPause)
        #expect(sink.attempts == 2)
        loop.advanceTime(by: StreamEnd.retryPause * 2)
        #expect(sink.attempts == 4 && sink.accepted.map(\.headers.route) == ["tls.end"])
    }
}
