public import ConduitKit
public import Synchronization

/// A handler that never replies: for tests of reply timeouts and of cancellation. It records
/// the ids whose requests reached it and those whose requests were then cancelled.
public struct SilentHandler: ConduitHandler {
    public static let received = Mutex<Set<String>>([])
    public static let cancelled = Mutex<Set<String>>([])

    public init(options: NoOptions, context: HandlerContext) {}

    public func handle(_ request: Request, responder: Responder) {
        let client = request.client.rawValue
        request.onCancel { _ = Self.cancelled.withLock { $0.insert(client) } }
        _ = Self.received.withLock { $0.insert(client) }
    }
}
