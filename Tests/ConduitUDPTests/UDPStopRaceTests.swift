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

/// A `udp.bind` that completes after something that should have undone it.
@Suite("UDP: a bind racing the handler's stop or its id's expiry")
struct UDPStopRaceTests {
    /// A reload that stops the handler while a `udp.bind` is under way: the bind completed after
    /// `stop()` had closed the sockets it knew, so its socket went into a handler out of every
    /// table, bound for the life of the process (nothing closed it, not its id's expiry nor the
    /// shutdown), and the client was told it had a socket.
    @Test func aBindThatCompletesAfterStopIsClosedAndRefused() async throws {
        let error = try await Self.bind(client: "late-bind") { handler, _ in await handler.stop() }
        #expect(error?.kind == .unavailable, "\(String(describing: error))")
    }

    /// An id that expires while its `udp.bind` is under way: the expiry found no socket to
    /// close, then the bind stored one, and nothing closed it again (its id was gone): a
    /// descriptor and a place of `maxSockets` held until a reload or the shutdown.
    @Test func aBindThatCompletesAfterItsIdExpiredIsClosedAndRefused() async throws {
        let error = try await Self.bind(client: "expiring") { handler, client in handler.clientEvent(.expired(client)) }
        #expect(error?.kind == .unavailable, "\(String(describing: error))")
    }

    /// Binds while the socket's event loop is held busy, so the bind completes after `meanwhile`;
    /// the bind's error (nil: it succeeded, recorded as an issue), after checking the id has
    /// no socket.
    private static func bind(client name: String, meanwhile: (UDPHandler, ClientID) async -> Void) async throws -> ConduitError? {
        // A group of its own: the loop held busy below would stall every other test's sockets
        // on a shared one.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        let loop = group.next()
        let context = HandlerContext(route: "udp.*", logger: .init(label: "udp.test"), pushes: RecordingPushSink(), eventLoopGroup: group)
        let handler = try UDPHandler(options: .init(), context: context)
        try await handler.start()
        let client = ClientID(name)!
        let gate = DispatchSemaphore(value: 0)
        loop.execute { gate.wait() }
        let answer = Mutex<Result<Reply, ConduitError>?>(nil)
        try handler.handle(request("bind", client, loop), responder: Responder { result in answer.withLock { $0 = result } })
        await meanwhile(handler, client)
        gate.signal()
        try await waitUntil { answer.withLock { $0 } != nil }
        #expect(throws: ConduitError.self, "the id has no socket") { try handler.handle(request("getState", client, loop), responder: Responder { _ in }) }
        await handler.stop()
        guard case .failure(let error) = answer.withLock({ $0 }) else {
            Issue.record("the bind succeeded: \(String(describing: answer.withLock { $0 }))")
            return nil
        }
        return error
    }

    private static func request(_ operation: String, _ client: ClientID, _ loop: any EventLoop) -> Request {
        Request(
            headers: ["route": "udp.\(operation)"], payload: ByteBuffer(), route: "udp.\(operation)", operation: operation,
            client: client, transport: .webSocket, eventLoop: loop)
    }
}
