import ConduitKit
import ConduitWire
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The supervisor's mutable state; only ever touched on the supervisor's event loop.
final class SupervisorState {
    enum Phase {
        case idle, starting, running
        /// Killed for misbehaving; its exit starts the restart.
        case retiring
        case waitingToRestart, stopped
        /// Children kept crashing at start-up: no more restarts, every request refused.
        case down
    }

    var phase = Phase.idle
    /// Counts children started, so events of an old child are told from the current one's.
    var incarnation = 0
    var child: RunningChild?
    /// How children that ended while still starting ended.
    var earlyExit: [Int: ChildExit] = [:]
    /// The last line a child wrote to stderr, by incarnation: most often why it died.
    var lastStderrLine: (incarnation: Int, line: String)?
    var pending: [UInt64: PendingRequest] = [:]
    /// Bytes handed to the child's stdin that it has not taken yet, whatever became of their
    /// requests (cancelled, timed out), and the timer that retires a child taking none of them.
    var unwrittenBytes = 0
    var inputStall: Scheduled<Void>?
    /// Requests that arrived while no child was running, in arrival order.
    var queue: [UInt64] = []
    var consecutiveTimeouts = 0
    /// Children in a row that exited within the start-up window.
    var startupCrashes = 0
    /// The last child given a request: one that exits after it is no crash at start-up, though
    /// it answered them all before its exit was seen.
    var lastGiven: Int?
    /// Why the host killed a child, when it did.
    var retiredBecause: (incarnation: Int, reason: String)?
    /// The exit, and the child, that took the route down.
    var wentDownAfter: (exit: ChildExit, incarnation: Int)?
    var restart: Scheduled<Void>?
    var exitWaiters: [EventLoopPromise<Void>] = []
    /// The parts of a message the child is sending in pieces, and where they go.
    var parts: ChunkAssembler
    var partsAddress: ChildAddress?
    private var restartDelay: TimeAmount

    init(limits: ProcessLimits) {
        parts = ChunkAssembler(limit: limits.maxMessageBytes)
        restartDelay = limits.firstRestartDelay
    }

    /// The delay before the next restart; each one doubles it up to the limit.
    func nextRestartDelay(_ limits: ProcessLimits) -> TimeAmount {
        defer { restartDelay = min(restartDelay * 2, limits.maxRestartDelay) }
        return restartDelay
    }

    func resetRestartDelay(_ limits: ProcessLimits) {
        restartDelay = limits.firstRestartDelay
    }

    /// How child `incarnation` ended: `exit`, or the host's reason for killing it when the kill
    /// is what ended it (a child's own exit closes its stdout too, often seen first).
    func ending(of incarnation: Int, _ exit: ChildExit) -> String {
        guard let retired = retiredBecause, retired.incarnation == incarnation, case .signal(SIGKILL) = exit else { return exit.description }
        return "was killed by the host (\(retired.reason))"
    }

    /// "; its last stderr line: …" for child `incarnation`, or nothing if it wrote none.
    func lastWords(of incarnation: Int) -> String {
        guard let last = lastStderrLine, last.incarnation == incarnation else { return "" }
        return "; its last stderr line: \(last.line)"
    }

    /// Answers every request written to child `incarnation` with `error`.
    func failWritten(to incarnation: Int, _ error: ConduitError) {
        fail(error) { $0.writtenTo == incarnation }
    }

    /// Answers every request still waiting for a child with `error`.
    func failQueued(_ error: ConduitError) {
        fail(error) { $0.writtenTo == nil }
        queue.removeAll()
    }

    func failAll(_ error: ConduitError) {
        fail(error) { _ in true }
        queue.removeAll()
    }

    private func fail(_ error: ConduitError, where matches: (PendingRequest) -> Bool) {
        for (id, request) in pending where matches(request) {
            pending[id] = nil
            request.fail(error)
        }
    }
}

/// A request the child has not answered yet.
struct PendingRequest {
    let responder: Responder
    /// Its client may cancel it (`cancel: <token>`) until it is answered.
    let cancellation: CancelRegistration
    /// The framed request until it is written to a child.
    var frames: ByteBuffer?
    /// Runs from the moment the request is written to a child.
    var timeout: Scheduled<Void>?
    /// The incarnation of the child it was written to; nil while it waits for one.
    var writtenTo: Int?
    /// Its client was answered already (it cancelled): the child's answer, when it comes, is
    /// dropped, and meanwhile it holds its place.
    var isAnswered = false

    /// Answers it with `answering` (once it is out of `pending`), unless its client was
    /// answered already. Its cancel registration goes after the answer: the registry must
    /// still know a cancelled request, so that answer is dropped (SPEC §8: one answer).
    func answer(_ answering: (Responder) -> Void) {
        timeout?.cancel()
        guard !isAnswered else { return }
        answering(responder)
        cancellation.remove()
    }

    func fail(_ error: ConduitError) { answer { $0.fail(error) } }

    /// Answers its client with `error` while it stays pending, its timeout running.
    mutating func failAhead(_ error: ConduitError) {
        responder.fail(error)
        cancellation.remove()
        isAnswered = true
    }
}

struct RunningChild {
    let process: ChildProcess
    let incarnation: Int
    let startedAt: NIODeadline
}

/// Where a message from the child goes: the request it answers, or the client it is pushed to.
struct ChildAddress: Equatable, CustomStringConvertible {
    let request: String?
    let pushTo: String?

    init(_ headers: Headers) {
        request = headers[ChildHeader.request]
        pushTo = headers[ChildHeader.pushTo]
    }

    var description: String {
        if let request { return "request \(request)" }
        if let pushTo { return "a push to '\(pushTo)'" }
        return "nowhere (neither x-request nor x-push-to)"
    }
}

/// The headers the host and the child add to messages between them (docs/process-handlers.md).
enum ChildHeader {
    /// Host → child: the id of the client that sent the request.
    static let client = "x-client"
    /// Host → child: the host's id for the request; child → host: the request a reply answers.
    static let request = "x-request"
    /// Child → host: push this message to that client id.
    static let pushTo = "x-push-to"

    /// Removed from client requests (the host's own are added) and from what the child sends.
    static let reserved = [client, request, pushTo]
}
