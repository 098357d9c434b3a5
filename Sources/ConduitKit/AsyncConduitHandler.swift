/// A handler written as one async function: its return value is the reply (nil: none), a
/// thrown error the error reply. Each request runs in its own task, so slow work never holds
/// up the connection; use `ConduitHandler` directly when replies must keep request order.
public protocol AsyncConduitHandler: ConduitHandler {
    func handle(_ request: Request) async throws -> Reply?
    /// How long a request may take before it is answered `TimeoutError` (nil: no limit).
    var requestTimeout: Duration? { get }
}

extension AsyncConduitHandler {
    public var requestTimeout: Duration? { .seconds(30) }

    public func handle(_ request: Request, responder: Responder) throws {
        responder.respond(timeout: requestTimeout) {
            try await self.handle(request)
        }
    }
}
