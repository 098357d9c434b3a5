public import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// On a listening channel: stops accepting for a moment when accept fails for want of
/// descriptors or memory. The connection stays in the backlog and the listening socket
/// readable, so trying again at once spun a whole core for as long as the shortage lasted.
/// SwiftNIO's `AcceptBackoffHandler` does not help here: it holds back the next `read`, but
/// the channel asks for none after a failed accept (its read is still pending) and stays
/// registered for readability. Turning `autoRead` off unregisters it; on again, it reads.
public final class AcceptPause: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = any Channel

    private let pause: TimeAmount
    private let freeDescriptor: (@Sendable () -> Bool)?
    private var resumption: Scheduled<Void>?

    /// `freeDescriptor`: called first when accept fails for want of descriptors; true when it
    /// freed one (a descriptor kept in reserve), and accept is then tried again at once.
    public init(pause: TimeAmount = .milliseconds(100), freeDescriptor: (@Sendable () -> Bool)? = nil) {
        self.pause = pause
        self.freeDescriptor = freeDescriptor
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, Self.isShortage(error), resumption == nil else {
            return context.fireErrorCaught(error)
        }
        // Still registered and readable: the loop accepts again on its next turn.
        if freeDescriptor?() == true { return }
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        resumption = context.eventLoop.assumeIsolated().scheduleTask(in: pause) {
            self.resumption = nil
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        resumption?.cancel()
        resumption = nil
    }

    /// The errors SwiftNIO keeps a listening channel open for, but for a connection that was
    /// aborted before it was accepted (nothing is short then).
    private static func isShortage(_ error: IOError) -> Bool {
        [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode)
    }
}
