import ConduitKit
import ConduitWire
import Foundation
import NIOCore
import Synchronization

/// Replies with the request's payload in three parts, the first two with `more=true`;
/// `end: fail` fails the request in place of the third.
struct PartsHandler: ConduitHandler {
    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) {
        var payload = request.payload
        let third = payload.readableBytes / 3
        for part in [payload.readSlice(length: third)!, payload.readSlice(length: third)!] {
            responder.reply(headers: ["more": "true"], payload: part)
        }
        guard request.headers["end"] != "fail" else { return responder.fail(.internal("failed after its parts")) }
        responder.reply(headers: ["parts": "3"], payload: payload)
    }
}

/// Replies with the first half of the request's payload (`more=true`) at once and the rest
/// 300 ms later: a reply whose parts straddle its caller's connection closing.
struct LatePartsHandler: ConduitHandler {
    static let lastPartsSent = Atomic<Int>(0)

    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) {
        var payload = request.payload
        responder.reply(headers: ["more": "true"], payload: payload.readSlice(length: payload.readableBytes / 2)!)
        let rest = payload
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
            responder.reply(payload: rest)
            Self.lastPartsSent.add(1, ordering: .relaxed)
        }
    }
}

/// Replies with the request's payload `count` times (a header), each but the last with
/// `more=true`: a handler that sends a reply in as many parts as it likes.
struct FloodHandler: ConduitHandler {
    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) {
        let count = Int(request.headers["count"] ?? "") ?? 1
        for _ in 1..<max(count, 1) { responder.reply(headers: ["more": "true"], payload: request.payload) }
        responder.reply(payload: request.payload)
    }
}

/// Replies with `count` (a header) headers of its own, `w0`, `w1`, …, and the request's
/// payload: a reply near the framing's limit once the host adds `route`, the request's
/// `token`, resume's `pos` and, on the parts of a large payload, `more`.
struct WideReplyHandler: ConduitHandler {
    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) {
        let count = Int(request.headers["count"] ?? "") ?? 0
        responder.reply(headers: Headers((0..<count).map { ("w\($0)", "v") }), payload: request.payload)
    }
}

/// Keeps per-id state the way a stream handler does (a UDP socket, an AI session): it pushes
/// to the requesting id and records the ids it was told have expired.
struct StatefulHandler: ConduitHandler {
    static let expired = Mutex<Set<String>>([])
    let pushes: any PushSink

    init(options: NoOptions, context: HandlerContext) {
        pushes = context.pushes
    }

    func handle(_ request: Request, responder: Responder) {
        pushes.push(Message(headers: ["route": "state"], payload: request.payload), to: request.client)
        responder.reply(json: true)
    }

    func clientEvent(_ event: ClientEvent) {
        if case .expired(let id) = event { _ = Self.expired.withLock { $0.insert(id.rawValue) } }
    }
}

/// Counts its live instances (started, not yet stopped), to show what a reload leaves running.
/// `failStart: true` makes `start` throw, like a handler whose port is taken. `scope` keeps one
/// suite's count apart from another's running beside it (a suite that used the handler too
/// made another's count 2, not 1).
struct CountingHandler: ConduitHandler {
    struct Options: Decodable, Sendable {
        let version: Int
        let failStart: Bool?
        let scope: String?
    }

    /// The instances started and not stopped, with their scope (one stopped twice counts once).
    static let running = Mutex<[UUID: String]>([:])
    static var live: Int { running.withLock { $0.values.filter { $0 == ControlRaceTests.countingScope }.count } }
    let options: Options
    private let id = UUID()

    init(options: Options, context: HandlerContext) {
        self.options = options
    }

    func start() async throws {
        if options.failStart == true { throw StartFailure() }
        Self.running.withLock { $0[id] = options.scope ?? "" }
        // A start that takes a moment, like binding a listener: room for a second reload.
        try await Task.sleep(for: .milliseconds(50))
    }

    func stop() async { _ = Self.running.withLock { $0.removeValue(forKey: id) } }

    func handle(_ request: Request, responder: Responder) {
        responder.reply(json: options.version)
    }

    struct StartFailure: Error {}
}

/// Takes `startSeconds` to start and `stopSeconds` to stop: a handler that hangs there. With
/// `startsWhenOpened`, its start ends only once the test opens that gate (`open(_:)`).
struct HangingHandler: ConduitHandler {
    /// Starts begun so far, to act while one runs.
    static let startsBegun = Atomic<Int>(0)
    /// The `name`s of the instances started and not stopped (a test's own, whatever runs beside it).
    static let running = Mutex<Set<String>>([])
    static let openedGates = Mutex<Set<String>>([])

    struct Options: Decodable, Sendable {
        let startSeconds: Double?
        let stopSeconds: Double?
        let name: String?
        let startsWhenOpened: String?
    }

    static func open(_ gate: String) { _ = openedGates.withLock { $0.insert(gate) } }

    let options: Options

    init(options: Options, context: HandlerContext) {
        self.options = options
    }

    func start() async throws {
        HangingHandler.startsBegun.add(1, ordering: .relaxed)
        if let name = options.name { _ = Self.running.withLock { $0.insert(name) } }
        if let startSeconds = options.startSeconds { try? await Task.sleep(for: .seconds(startSeconds)) }
        if let gate = options.startsWhenOpened {
            while !Self.openedGates.withLock({ $0.contains(gate) }) { try? await Task.sleep(for: .milliseconds(10)) }
        }
    }

    func stop() async {
        if let stopSeconds = options.stopSeconds { try? await Task.sleep(for: .seconds(stopSeconds)) }
        if let name = options.name { _ = Self.running.withLock { $0.remove(name) } }
    }

    static func isRunning(_ name: String) -> Bool { running.withLock { $0.contains(name) } }

    func handle(_ request: Request, responder: Responder) {
        responder.reply(json: "hanging")
    }
}

/// Holds each request's answer until the test lets it go (`release(token:)`), so a reply can
/// be made to come after anything else.
struct GatedHandler: ConduitHandler {
    static let waiting = Mutex<[String: Responder]>([:])

    init(options: NoOptions, context: HandlerContext) {}

    func handle(_ request: Request, responder: Responder) {
        let token = request.headers["token"] ?? ""
        Self.waiting.withLock { $0[token] = responder }
    }

    static func isWaiting(token: String) -> Bool { waiting.withLock { $0[token] != nil } }

    /// Answers the request `token` with `released: true`.
    static func release(token: String) {
        waiting.withLock { $0.removeValue(forKey: token) }?.reply(headers: ["released": "true"], payload: ByteBuffer())
    }
}
