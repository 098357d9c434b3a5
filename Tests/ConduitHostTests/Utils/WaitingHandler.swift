import ConduitKit
import ConduitWire
import NIOCore
import Synchronization

/// `waiting`: pushes `fill` reliable 64 KiB messages to the client named in `to` (a client that does not read
/// is then congested), then starts `waiters` tasks that each wait for the id to be writable as
/// the handler guide says to (`whenWritable`, then check `isCongested` again), counting every
/// time one is called back while the id is still congested.
struct WaitingHandler: ConduitHandler {
    static let wakeUpsWhileCongested = Atomic<Int>(0)
    let pushes: any PushSink

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    func handle(_ request: Request, responder: Responder) throws {
        let fill = Int(request.headers["fill"] ?? "0") ?? 0
        let waiters = Int(request.headers["waiters"] ?? "0") ?? 0
        guard let client = request.headers["to"].flatMap(ClientID.init) else { throw ConduitError.badRequest("to: a client id") }
        for _ in 0..<fill {
            pushes.push(Message(headers: ["route": "fill"], payload: ByteBuffer(repeating: 0, count: 65_000)), to: client, delivery: .reliable)
        }
        for _ in 0..<waiters {
            Task { [pushes] in
                while pushes.isCongested(client), !Task.isCancelled {
                    await withCheckedContinuation { continuation in pushes.whenWritable(client) { continuation.resume() } }
                    if pushes.isCongested(client) { Self.wakeUpsWhileCongested.add(1, ordering: .relaxed) }
                }
            }
        }
        responder.reply(json: pushes.isCongested(client))
    }
}
