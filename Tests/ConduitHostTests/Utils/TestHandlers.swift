import ConduitKit
import Foundation
import ConduitWire
import NIOCore
import Synchronization

/// `pusher`: pushes `count` messages (header `n` = 0…count-1) to the client named in `to`
/// (default: the sender), then replies `{"data":count}`.
struct PushingHandler: ConduitHandler {
    let pushes: any PushSink
    let events: EventLog

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
        events = EventLog.shared
    }

    func handle(_ request: Request, responder: Responder) throws {
        let count = Int(request.headers["count"] ?? "1") ?? 1
        let target = try request.headers["to"].map { value throws(ConduitError) in
            guard let id = ClientID(value) else { throw .badRequest("bad 'to'") }
            return id
        } ?? request.client
        for index in 0..<count {
            pushes.push(Message(headers: ["route": "push", "n": "\(index)"], payload: request.payload), to: target)
        }
        responder.reply(json: count)
    }

    func clientEvent(_ event: ClientEvent) { events.record(event) }
}

/// `parted`: replies in `parts` parts (`more: true` on all but the last) of `size` bytes
/// each, the part's index in every byte, and pushes `push: <index>` to the sender after each
/// part but the last: a handler whose reply is made in parts while other messages go out.
/// `end: fail` fails the request in place of the last part; `end: never` never sends it.
/// `every: <ms>` sends the parts that far apart, the last 100 ms after the one before it.
struct PartedReplyHandler: ConduitHandler {
    let pushes: any PushSink

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    func handle(_ request: Request, responder: Responder) {
        let parts = Int(request.headers["parts"] ?? "2") ?? 2
        let size = Int(request.headers["size"] ?? "10") ?? 10
        if let every = request.headers["every"].flatMap(Int64.init) {
            for index in 0..<parts {
                let last = index == parts - 1
                let after = TimeAmount.milliseconds(last ? every * Int64(index - 1) + 100 : every * Int64(index))
                let payload = ByteBuffer(repeating: UInt8(truncatingIfNeeded: index), count: size)
                request.eventLoop.scheduleTask(in: after) { responder.reply(headers: last ? [:] : ["more": "true"], payload: payload) }
            }
            return
        }
        for index in 0..<parts {
            let payload = ByteBuffer(repeating: UInt8(truncatingIfNeeded: index), count: size)
            guard index < parts - 1 else {
                switch request.headers["end"] {
                case "fail": return responder.fail(.internal("failed after its parts"))
                case "never": return
                default: return responder.reply(headers: ["parts": "\(parts)"], payload: payload)
                }
            }
            responder.reply(headers: ["more": "true"], payload: payload)
            pushes.push(Message(headers: ["route": "push", "after": "\(index)"], payload: [9]), to: request.client)
        }
    }
}

/// `thrower`: fails every request with the error type named in the `type` header.
struct ThrowingHandler: ConduitHandler {
    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) throws {
        switch request.headers["type"] {
        case "untyped": throw PlainError()
        case let type?: throw ConduitError(.init(type), "asked to fail")
        case nil: throw ConduitError.badRequest("no type")
        }
    }

    /// An error whose text must stay in the host (it names a secret).
    struct PlainError: Error, CustomStringConvertible {
        var description: String { "connect to postgres://admin:hunter2@10.0.0.5 failed" }
    }
}

/// `configured`: has typed options, to test option errors with line and column.
struct SettingsHandler: ConduitHandler {
    struct Options: Decodable, Sendable {
        let greeting: String
        let repeats: Int
    }

    let options: Options

    init(options: Options, context: HandlerContext) throws {
        guard options.repeats > 0 else { throw ConduitError.badRequest("repeats must be positive") }
        self.options = options
    }

    func handle(_ request: Request, responder: Responder) {
        responder.reply(json: Array(repeating: options.greeting, count: options.repeats))
    }
}

/// `defaulted`: options as a plain struct (`HandlerOptions`), answered back as JSON.
struct DefaultedHandler: ConduitHandler {
    struct Options: HandlerOptions {
        struct Section: HandlerOptions {
            var host = "127.0.0.1"
            var port = 0
            init() {}
            func validate() throws(InvalidOption) {
                guard (0...65_535).contains(port) else { throw InvalidOption("port", "must be 0…65535") }
            }
        }
        var step = 1
        var label: String?
        var names = ["a"]
        var section = Section()
        init() {}
        func validate() throws(InvalidOption) {
            guard step > 0 else { throw InvalidOption("step", "must be above 0") }
        }
    }

    let options: Options

    init(options: Options, context: HandlerContext) {
        self.options = options
    }

    func handle(_ request: Request, responder: Responder) {
        responder.reply(json: options)
    }
}

/// Client events seen by `pusher` handlers, for the lifecycle tests.
final class EventLog: Sendable {
    static let shared = EventLog()
    private let events = Mutex<[ClientEvent]>([])

    func record(_ event: ClientEvent) { events.withLock { $0.append(event) } }
    func all(for id: String) -> [ClientEvent] {
        events.withLock { $0.filter { $0.clientID.rawValue == id } }
    }
}

extension ClientEvent {
    var clientID: ClientID {
        switch self {
        case .connected(let id), .replaced(let id), .disconnected(let id), .expired(let id): id
        }
    }
}

/// `outcome`: pushes one message to the sender, with `headers` extra headers of its own
/// (300 makes it unencodable), and replies with what `push` returned.
struct OutcomeHandler: ConduitHandler {
    let pushes: any PushSink

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    func handle(_ request: Request, responder: Responder) throws {
        var headers: Headers = ["route": "outcome"]
        for index in 0..<(Int(request.headers["headers"] ?? "0") ?? 0) { headers.append("h\(index)", "x") }
        responder.reply(json: "\(pushes.push(Message(headers: headers), to: request.client))")
    }
}

/// `slow`: answers through `respond(timeout: 0.2 s)` with a body that runs long. `mode:
/// stubborn` ignores cancellation for 15 s; `mode: patient` waits a minute but stops when
/// cancelled. What the bodies saw is recorded by request token.
struct SlowHandler: ConduitHandler {
    static let finished = Mutex<Set<String>>([])
    static let cancelled = Mutex<Set<String>>([])

    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) throws {
        let token = request.headers["token"] ?? ""
        let stubborn = request.headers["mode"] == "stubborn"
        if request.headers["mode"] == "quick" {
            responder.respond { Reply(payload: ByteBuffer(string: "quick")) }
            return
        }
        responder.respond(timeout: stubborn ? .milliseconds(200) : nil) {
            if stubborn {
                // A wait that cancellation can't end (and that spins no thread meanwhile).
                await withCheckedContinuation { continuation in
                    DispatchQueue.global().asyncAfter(deadline: .now() + 15) { continuation.resume() }
                }
            } else {
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    Self.cancelled.withLock { _ = $0.insert(token) }
                    throw error
                }
            }
            Self.finished.withLock { _ = $0.insert(token) }
            return Reply(headers: [:])
        }
    }
}

/// A registration its own cancel handler can reach (set once, before any cancel runs it on
/// the event loop it was made on).
private final class KeptRegistration: @unchecked Sendable {
    var registration: CancelRegistration?
}

/// `watcher`: a synchronous handler that registers a cancellation callback (recording the
/// token) and replies `late` later from a scheduled task, as a handler driving its own I/O
/// would.
struct WatchingHandler: ConduitHandler {
    static let cancelled = Mutex<Set<String>>([])

    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) throws {
        let token = request.headers["token"] ?? ""
        let eventLoop = request.eventLoop
        let answer: @Sendable () -> Void = { responder.reply(headers: ["late": "true"]) }
        // Not cancelled, it answers after 2 s (or header `answersAfter` ms). Cancelled, it still
        // answers 100 ms (or header `endsAfterCancel` ms) after its callback ran, which the host
        // must drop: timed from the cancel, not the request, so a stalled machine can't make that
        // answer come first.
        let answersAfter = TimeAmount.milliseconds(Int64(request.headers["answersAfter"] ?? "") ?? 2000)
        let uncancelled = eventLoop.scheduleTask(in: answersAfter, answer)
        let ending = TimeAmount.milliseconds(Int64(request.headers["endsAfterCancel"] ?? "") ?? 100)
        // `removesOnCancel`: the registration is removed at the cancel, before the late answer.
        let removes = request.headers["removesOnCancel"] != nil
        let kept = KeptRegistration()
        kept.registration = request.onCancel {
            Self.cancelled.withLock { _ = $0.insert(token) }
            uncancelled.cancel()
            eventLoop.execute {
                if removes { kept.registration?.remove() }
                eventLoop.scheduleTask(in: ending, answer)
            }
        }
        // `firstPart`: a part with more to come goes at once (the host holds it until the last).
        if request.headers["firstPart"] != nil { responder.reply(headers: ["more": "true"], payload: ByteBuffer(string: "first")) }
    }
}
