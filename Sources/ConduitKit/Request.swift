public import ConduitWire
public import NIOCore

/// One decoded request handed to a handler.
public struct Request: Sendable {
    /// How the request reached the host.
    public enum Transport: String, Sendable {
        case webSocket, ipc
    }

    /// Headers as sent (including `route` and `token`).
    public var headers: Headers
    /// The payload: a slice of the receive buffer, or the joined chunks of a large request.
    public var payload: ByteBuffer
    /// The route the client asked for (the `route` header).
    public let route: String
    /// The route relative to where the handler is mounted: `bind` for `dgram.bind` under
    /// `dgram.*`, empty under an exact route. Handlers match this, never `route`, so a module
    /// works under whatever prefix the YAML gives it.
    public let operation: String
    /// The sending client's id (for IPC, the `id` query parameter or `ipc`).
    public let client: ClientID
    public let transport: Transport
    /// The event loop of the connection the request came from (the built-in modules open their
    /// sockets on it). Not part of the API: a handler's own NIO work uses
    /// `HandlerContext.eventLoopGroup`, and replies may be made from any thread.
    package let eventLoop: any EventLoop
    /// The connection's cancellable requests (nil where a request can't be cancelled: IPC).
    package var cancellations: CancellationRegistry?
    /// When it reached its handler, as its replies' address says: which of the requests under
    /// one token registered for a cancel.
    package var received = NIODeadline.now()

    /// Made by the host, or by `ConduitKitTesting`'s test bench. `operation` defaults to the
    /// whole route (a handler mounted at the root).
    package init(
        headers: Headers, payload: ByteBuffer, route: String, operation: String? = nil, client: ClientID,
        transport: Transport, eventLoop: any EventLoop
    ) {
        self.headers = headers
        self.payload = payload
        self.route = route
        self.operation = operation ?? route
        self.client = client
        self.transport = transport
        self.eventLoop = eventLoop
    }

    /// The value of a header the request must carry, or a `BadRequestError`.
    public func require(_ name: String) throws(ConduitError) -> String {
        guard let value = headers[name] else {
            throw .badRequest("route '\(route)' needs the header '\(name)'")
        }
        return value
    }

    /// Registers `handler` to run (once, on the canceller's thread) if the client cancels this
    /// request (SPEC §8: `cancel: <token>`) before the work ends; the client is then answered
    /// `CancelledError` and later replies are not sent. `remove()` the registration when the
    /// work is over. A request without a `token` can't be cancelled: `handler` never runs.
    @discardableResult
    public func onCancel(_ handler: @escaping @Sendable () -> Void) -> CancelRegistration {
        let registration = CancelRegistration(registry: cancellations, route: route, correlation: headers.correlation, received: received)
        registration.onCancel(handler)
        return registration
    }

    /// The payload as a UTF-8 string (invalid bytes are replaced).
    public var payloadString: String { String(buffer: payload) }
}
