public import ConduitKit
import ConduitWire
public import Synchronization

/// A handler that never replies: for tests of reply timeouts and of cancellation. It records
/// the ids whose requests reached it and those whose requests were then cancelled, and tells a
/// cancelled request's client with a push (`<mount>.cancelled`, header `cancelled: <token>`),
/// so a client in another process can see the host stopped the work.
public struct SilentHandler: ConduitHandler {
    public static let received = Mutex<Set<String>>([])
    public static let cancelled = Mutex<Set<String>>([])
    /// The token of each client's last request.
    public static let tokens = Mutex<[String: String]>([:])
    private let context: HandlerContext

    public init(options: NoOptions, context: HandlerContext) {
        self.context = context
    }

    public func handle(_ request: Request, responder: Responder) {
        let client = request.client
        let notice = Message(headers: ["route": context.route("cancelled"), "cancelled": request.headers.correlation?.value ?? ""])
        request.onCancel { [pushes = context.pushes] in
            _ = Self.cancelled.withLock { $0.insert(client.rawValue) }
            pushes.push(notice, to: client)
        }
        Self.tokens.withLock { $0[client.rawValue] = request.headers.correlation?.value }
        _ = Self.received.withLock { $0.insert(client.rawValue) }
    }
}
