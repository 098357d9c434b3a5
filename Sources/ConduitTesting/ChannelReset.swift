import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Channel {
    /// Closes the connection as a killed process or a dropped network does: a TCP reset (a zero
    /// linger), no close handshake. A channel without socket options is closed plainly, and so
    /// is one whose linger can't be set.
    public func closeWithReset() -> EventLoopFuture<Void> {
        guard let socket = self as? any SocketOptionProvider else { return close() }
        return socket.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            .flatMapErrorThrowing { _ in }
            .flatMap { self.close() }
    }
}
