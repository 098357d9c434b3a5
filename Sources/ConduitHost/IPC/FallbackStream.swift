import ConduitKit
import NIOCore
import Synchronization

/// One `GET /internal.conduit.events?id=` response (SPEC §6): the id's pushes while it has no
/// socket. The messages stay in the directory's buffer until this stream writes them, and it
/// writes only while the connection can take more, so a slow reader holds no second copy and
/// a socket that attaches meanwhile receives exactly what was not written here.
final class FallbackStream: PushStream {
    let client: ClientID
    private let handler: NIOLoopBound<IPCRequestHandler>
    private let eventLoop: any EventLoop
    /// One pump per event loop tick, however many pushes arrive in it.
    private let pumpScheduled = Atomic(false)

    init(client: ClientID, handler: IPCRequestHandler, eventLoop: any EventLoop) {
        self.client = client
        self.handler = NIOLoopBound(handler, eventLoop: eventLoop)
        self.eventLoop = eventLoop
    }

    func messagesAvailable() {
        guard pumpScheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        eventLoop.execute {
            self.pumpScheduled.store(false, ordering: .releasing)
            self.handler.value.pumpStream()
        }
    }

    func end() {
        eventLoop.execute { self.handler.value.endStream() }
    }
}
