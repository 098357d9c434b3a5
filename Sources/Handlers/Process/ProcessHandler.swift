public import ConduitKit

/// `process`: a handler that runs in a child process and speaks Conduit messages over its
/// stdin/stdout (docs/process-handlers.md), so a handler can be written in any language.
///
/// Every request is written to the child with `x-client` and `x-request` added; the child
/// answers with replies (carrying `x-request`) and pushes (carrying `x-push-to`). The child
/// is kept running: restarted with backoff when it exits, killed when it stops answering.
public struct ProcessHandler: ConduitHandler {
    private let supervisor: ProcessSupervisor

    public init(options: ProcessOptions, context: HandlerContext) throws {
        supervisor = ProcessSupervisor(command: try ChildCommand(options), limits: ProcessLimits(options), context: context)
    }

    public func handle(_ request: Request, responder: Responder) {
        // Counted with the connection's requests in flight, and its bytes held of the host's
        // budget, until the child answers: a child that answers slowly otherwise held up to
        // `maxInFlight` requests outside the budget.
        responder.respondWhenDone { finish in supervisor.submit(request, responder: Responder(finish)) }
    }

    /// Starts the first child; a command that cannot be run fails the host's start-up.
    public func start() async throws {
        try await supervisor.start()
    }

    public func stop() async {
        await supervisor.stop()
    }

    public var health: HandlerHealth { supervisor.health }
}
