public import ConduitKit

/// A handler that never replies: for tests of reply timeouts.
public struct SilentHandler: ConduitHandler {
    public init(options: NoOptions, context: HandlerContext) {}
    public func handle(_ request: Request, responder: Responder) {}
}
