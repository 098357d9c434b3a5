import ConduitKit
import ConduitKitTesting
import ConduitUDP
import ConduitWire
import ConduitTesting
import Dispatch
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A reload that stops the handler while a `udp.bind` is under way: the bind completed after
/// `stop()` had closed the sockets it knew, so its socket went into a handler out of every
/// table, bound for the life of the process (nothing closed it, not its id's expiry nor the
/// shutdown), and the client was told it had a socket.
@Suite("UDP: a bind racing the handler's stop")
struct UDPStopRaceTests {
    @Test func aBindThatCompletesAfterStopIsClosedAndRefused() async throws {
        // A group of its own: the loop held busy below would stall every other test's sockets
        // on a shared one.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        let loop = group.next()
        let context = HandlerContext(route: "udp.*", logger: .init(label: "udp.test"), pushes: RecordingPushSink(), eventLoopGroup: group)
        let handler = try UDPHandler(options: .init(), context: context)
        try await handler.start()
        // The loop is held busy, so the bind waits behind the stop.
        let gate = DispatchSemaphore(value: 0)
        loop.execute { gate.wait() }
        let answer = Mutex<Result<Reply, ConduitError>?>(nil)
        let request = Request(
            headers: ["route": "udp.bind"], payload: ByteBuffer(), route: "udp.bind", operation: "bind",
            client: ClientID("late-bind")!, transport: .webSocket, eventLoop: loop)
        try handler.handle(request, responder: Responder { result in answer.withLock { $0 = result } })
        await handler.stop()
        gate.signal()
        try await waitUntil { answer.withLock { $0 } != nil }
        guard case .failure(let error) = answer.withLock({ $0 }) else {
            Issue.record("the bind succeeded after the handler stopped: \(String(describing: answer.withLock { $0 }))")
            return
        }
        #expect(error.kind == .unavailable, "\(error)")
    }
}
