import ConduitKit
import ConduitWire
import Logging
import NIOCore
import Synchronization

/// Keeps one child running and matches its replies to requests. All of its state lives on
/// one event loop (`NIOLoopBoundBox`), so no lock is taken; requests hop onto that loop.
final class ProcessSupervisor: Sendable {
    private let command: ChildCommand
    private let limits: ProcessLimits
    private let pushes: any PushSink
    private let logger: Logger
    private let eventLoop: any EventLoop
    private let state: NIOLoopBoundBox<SupervisorState>
    private let requestIDs = Atomic<UInt64>(0)
    /// Why the route is down (children kept crashing at start-up); read from any thread.
    private let downReason = Mutex<String?>(nil)

    var health: HandlerHealth { downReason.withLock { $0 }.map { .down(reason: $0) } ?? .up }

    init(command: ChildCommand, limits: ProcessLimits, context: HandlerContext) {
        self.command = command
        self.limits = limits
        self.pushes = context.pushes
        self.logger = context.logger
        self.eventLoop = context.eventLoopGroup.next()
        self.state = .makeBoxSendingValue(SupervisorState(limits: limits), eventLoop: eventLoop)
    }

    // MARK: Lifecycle

    func start() async throws {
        try await eventLoop.flatSubmit { self.launch(initially: true) }.get()
    }

    /// Answers the requests no child was given with `UnavailableError` and closes the child's
    /// stdin (its cue to exit); the child answers what it was given, within those requests'
    /// timeout, and is killed if it is still running then (two seconds when it had none, or
    /// does not read its input). A
    /// reload that changed the route's options failed them all at once, answers on their way
    /// lost, and killed the child two seconds later.
    func stop() async {
        let exited: EventLoopFuture<Void> = eventLoop.flatSubmit {
            let state = self.state.value
            state.phase = .stopped
            state.restart?.cancel()
            guard let child = state.child else {
                state.failAll(.unavailable("the handler is stopping"))
                return self.eventLoop.makeSucceededVoidFuture()
            }
            state.failQueued(.unavailable("the handler is stopping"))
            let exited = self.eventLoop.makePromise(of: Void.self)
            state.exitWaiters.append(exited)
            child.process.channel.close(mode: .output, promise: nil)
            // One that is not reading its input is not answering either.
            let answering = state.unwrittenBytes == 0 && state.pending.values.contains { $0.writtenTo == child.incarnation }
            let kill = self.eventLoop.scheduleTask(in: answering ? max(.seconds(2), self.limits.requestTimeout) : .seconds(2)) { child.process.kill() }
            exited.futureResult.whenComplete { _ in kill.cancel() }
            return exited.futureResult
        }
        try? await exited.get()
    }

    /// Starts a child; requests that waited for one are written to it. A child that can't be
    /// started is retried with backoff, except the first: that one fails `start`.
    private func launch(initially: Bool = false) -> EventLoopFuture<Void> {
        let state = state.value
        state.incarnation += 1
        let incarnation = state.incarnation
        state.phase = .starting
        let launched = ChildProcess.launch(
            command, on: eventLoop,
            configureOutput: { channel, _ in
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ChildFrameDecoder()))
                try channel.pipeline.syncOperations.addHandler(ChildOutputHandler(supervisor: self, incarnation: incarnation))
            },
            configureStderr: { [logger] channel, pid in
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder()))
                try channel.pipeline.syncOperations.addHandler(StderrForwarder(logger: logger, pid: pid) { line in
                    self.state.value.lastStderrLine = (incarnation, line)
                    // The child that took the route down: its reason names the line, however late.
                    if let down = self.state.value.wentDownAfter, down.incarnation == incarnation {
                        self.setDownReason(after: down.exit, of: incarnation)
                    }
                })
            },
            onExit: { exit in self.eventLoop.execute { self.exited(incarnation, exit) } }
        )
        return launched.map { child in
            let state = self.state.value
            guard state.incarnation == incarnation, state.phase == .starting else { return child.kill() }
            state.phase = .running
            state.child = RunningChild(process: child, incarnation: incarnation, startedAt: .now())
            self.logger.info("handler process started", metadata: ["process.pid": "\(child.pid)"])
            if let exit = state.earlyExit.removeValue(forKey: incarnation) {
                return self.exited(incarnation, exit)
            }
            for id in state.queue { self.write(id, to: state.child!) }
            state.queue.removeAll()
        }.flatMapErrorThrowing { error in
            let state = self.state.value
            self.logger.error("handler process could not start", metadata: ["error.message": "\(error)"])
            state.failQueued(.unavailable("the handler process could not start: \(error)"))
            if initially { state.phase = .stopped } else { self.scheduleRestart() }
            throw ChildCommandError(description: "the handler process could not start: \(error)")
        }
    }

    private func scheduleRestart() {
        let state = state.value
        guard state.phase != .stopped else { return }
        state.phase = .waitingToRestart
        let delay = state.nextRestartDelay(limits)
        state.restart = eventLoop.scheduleTask(in: delay) {
            self.launch().whenFailure { _ in } // logged and rescheduled by `launch`
        }
    }

    // MARK: Requests

    func submit(_ request: Request, responder: Responder) {
        let id = requestIDs.wrappingAdd(1, ordering: .relaxed).newValue
        var headers = request.headers
        for name in ChildHeader.reserved { headers.removeAll(anyCaseOf: name) }
        headers.append(ChildHeader.client, request.client.rawValue)
        headers.append(ChildHeader.request, "\(id)")
        // Every part repeats the headers: large headers on a large payload multiplied what the
        // request holds (1 MB of headers on 16 MiB came to 258 MB, the budget charged 17).
        // Weighed before it is encoded: refused after, each such request took 250 MB first. An
        // upper bound of what the framing adds to the payload: as many parts as there can be,
        // each with the headers, `more` and its frame's length.
        let parts = request.payload.readableBytes / WireLimits.maxPayloadBytes + 1
        var partHeaders = headers
        partHeaders.append(HeaderName.more, "true")
        let repeated = (Message(headers: partHeaders).encodedSize + ChildFraming.lengthBytes) * parts
        guard repeated <= Self.repeatedHeaderBytes else { return responder.fail(Self.headersTooLarge(repeated, parts: parts)) }
        let frames: ByteBuffer
        do {
            var buffer = ByteBuffer()
            try ChildFraming.write(Message(headers: headers, payload: request.payload), into: &buffer)
            frames = buffer
        } catch {
            return responder.fail(.badRequest("the request can't be passed to the handler process: \(error)"))
        }
        // Registered before the hop, on the request's own loop: a cancel from its connection,
        // even one in the same read, then runs after `accept` and finds it pending. (One from
        // another socket of a resumed id may come first: the request then stays until the
        // child answers or it times out, its client answered already.)
        let cancellation = request.onCancel { [eventLoop] in eventLoop.execute { self.cancelled(id) } }
        eventLoop.execute { self.accept(id, frames: frames, responder: responder, cancellation: cancellation) }
    }

    private func accept(_ id: UInt64, frames: ByteBuffer, responder: Responder, cancellation: CancelRegistration) {
        let state = state.value
        let request = PendingRequest(responder: responder, cancellation: cancellation, frames: frames)
        guard state.phase != .stopped else { return request.fail(.unavailable("the handler is stopped")) }
        if let reason = downReason.withLock({ $0 }) { return request.fail(.unavailable(reason)) }
        guard state.pending.count < limits.maxInFlight else {
            return request.fail(.unavailable("the handler process has \(limits.maxInFlight) requests in flight; try again later"))
        }
        // A child that does not read its input gets no more of it: what waits for it stays
        // bounded in bytes, whether its requests are still waiting, cancelled or timed out.
        guard state.unwrittenBytes < Self.maxUnwrittenBytes else {
            return request.fail(.unavailable("the handler process is not reading its input (\(state.unwrittenBytes) bytes wait for it); try again later"))
        }
        state.pending[id] = request
        if let child = state.child, state.phase == .running {
            write(id, to: child)
        } else {
            state.queue.append(id)
        }
    }

    /// Writes a request to the child; its timeout runs from now, so time spent waiting for a
    /// (re)started child is not counted against it.
    private func write(_ id: UInt64, to child: RunningChild) {
        guard let frames = state.value.pending[id]?.frames else { return }
        state.value.pending[id]?.writtenTo = child.incarnation
        state.value.lastGiven = child.incarnation
        state.value.pending[id]?.frames = nil
        state.value.pending[id]?.timeout = eventLoop.scheduleTask(in: limits.requestTimeout) { self.timedOut(id) }
        let bytes = frames.readableBytes
        state.value.unwrittenBytes += bytes
        child.process.channel.writeAndFlush(frames).hop(to: eventLoop).whenComplete { _ in self.written(bytes, to: child) }
        // Timed only when the pipe did not take it all at once (it completes the write before
        // returning when it does): a child that reads keeps no timer armed per request.
        if state.value.unwrittenBytes > 0, state.value.inputStall == nil { watchInput(of: child) }
    }

    /// The most that may wait to be written to a child's stdin before requests are refused:
    /// more than one request of the largest size a client can send.
    static let maxUnwrittenBytes = 32 << 20
    /// What a request's headers may come to, repeated in its parts to the child: 16 KiB of
    /// headers on a 16 MiB payload.
    static let repeatedHeaderBytes = 4 << 20

    private static func headersTooLarge(_ bytes: Int, parts: Int) -> ConduitError {
        .payloadTooLarge(
            "the request's headers, repeated in each of its \(parts) parts to the handler process, come to \(bytes) bytes (at most \(repeatedHeaderBytes)): send fewer or smaller headers")
    }

    /// The child's stdin took `bytes` (or closed): while more wait, the stall is timed anew.
    private func written(_ bytes: Int, to child: RunningChild) {
        let state = state.value
        state.unwrittenBytes -= bytes
        state.inputStall?.cancel()
        state.inputStall = nil
        if state.unwrittenBytes > 0, state.child?.incarnation == child.incarnation { watchInput(of: child) }
    }

    /// A child that takes none of its input for a request's timeout is hung, whether or not
    /// requests still wait for their answers: those cancelled or timed out count no timeout,
    /// and their bytes kept it from ever being replaced.
    private func watchInput(of child: RunningChild) {
        state.value.inputStall = eventLoop.scheduleTask(in: limits.requestTimeout) {
            self.state.value.inputStall = nil
            guard let current = self.state.value.child, current.incarnation == child.incarnation else { return }
            self.logger.error("handler process stopped reading its input; killing it", metadata: [
                "process.pid": "\(child.process.pid)", "process.unwritten": "\(self.state.value.unwrittenBytes)",
            ])
            self.retire(child, because: "it took none of its input for \(self.limits.requestTimeoutSeconds) s")
        }
    }

    /// The client cancelled it: it is answered `CancelledError` now. Nothing is sent to the
    /// child (its protocol has no cancel): one given the request holds its place in flight
    /// until it answers, which is dropped, or the request's time runs out, as a running task
    /// does in the host (docs/handler-guide.md). Given back at once, a client that sent and
    /// cancelled requests in a loop queued work for the child past `maxInFlight`, and other
    /// clients' requests timed out behind it.
    private func cancelled(_ id: UInt64) {
        let state = state.value
        guard let request = state.pending[id], !request.isAnswered else { return }
        let error = ConduitError.cancelled("the client cancelled the request")
        guard request.writtenTo != nil else {
            state.pending[id] = nil
            state.queue.removeAll { $0 == id }
            return request.fail(error)
        }
        state.pending[id]!.failAhead(error)
    }

    private func timedOut(_ id: UInt64) {
        let state = state.value
        guard let request = state.pending.removeValue(forKey: id) else { return }
        request.fail(.timeout("the handler process did not answer within \(limits.requestTimeoutSeconds) s"))
        guard let child = state.child, request.writtenTo == child.incarnation else { return }
        state.consecutiveTimeouts += 1
        guard state.consecutiveTimeouts >= limits.restartAfterTimeouts else { return }
        logger.error("handler process stopped answering; killing it", metadata: [
            "process.pid": "\(child.process.pid)", "process.timeouts": "\(state.consecutiveTimeouts)",
        ])
        retire(child, because: "it answered none of \(state.consecutiveTimeouts) requests in a row in time")
    }

    // MARK: The child's output

    /// One message read from the child's stdout; parts are joined before anything else.
    fileprivate func received(_ part: Message, from incarnation: Int) {
        let state = state.value
        guard let child = state.child, child.incarnation == incarnation else { return }
        // A message's parts are consecutive (docs/process-handlers.md): a part addressed
        // elsewhere than the ones before it is another message's. Joined, it took their payload
        // along: a reply's first part went to the client of a push written between its parts.
        let address = ChildAddress(part.headers)
        if state.parts.isEmpty {
            state.partsAddress = address
        } else if state.partsAddress != address {
            state.parts.reset()
            return malformed(MalformedChildOutput(description: "a part for \(address) came between the parts of a message for \(state.partsAddress!)"), from: incarnation)
        }
        let message: Message
        do {
            if part.headers.hasMore {
                // Copied, so it does not pin the child's read, and counted as what the part
                // kept, headers included: empty parts counted as nothing, without end.
                return try state.parts.append(ByteBuffer(buffer: part.payload), bytes: part.encodedSize)
            }
            // Counted whole, headers included, as the parts before it are: a message of one frame
            // was not counted at all (16.8 MB got past a `maxMessageBytes` of 1 KiB).
            let total = state.parts.queuedBytes + part.encodedSize
            guard total <= state.parts.limit else {
                state.parts.reset()
                return malformed(MalformedChildOutput(description: "a message larger than maxMessageBytes (\(total) bytes)"), from: incarnation)
            }
            var headers = part.headers
            headers.removeAll(HeaderName.more)
            message = Message(headers: headers, payload: try state.parts.complete(with: part.payload))
        } catch {
            return malformed(MalformedChildOutput(description: "a message larger than maxMessageBytes: \(error)"), from: incarnation)
        }
        if let id = message.headers[ChildHeader.request] {
            reply(message, to: id)
        } else if let target = message.headers[ChildHeader.pushTo] {
            push(message, to: target)
        } else {
            logger.warning("handler process message dropped: neither x-request nor x-push-to", metadata: ["message.headers": "\(message.headers)"])
        }
    }

    private func reply(_ message: Message, to id: String) {
        let state = state.value
        // Any reply, even one too late for its request, shows the child reads and answers:
        // counted only as timeouts, late replies had a slow child killed as hung.
        state.consecutiveTimeouts = 0
        guard let number = UInt64(id), let request = state.pending.removeValue(forKey: number) else {
            // Most likely answered already: timed out, cancelled, or the child replied twice.
            return logger.debug("handler process reply to no pending request", metadata: ["process.request": "\(id)"])
        }
        var headers = message.headers
        for name in ChildHeader.reserved { headers.removeAll(anyCaseOf: name) }
        if let kind = headers[HeaderName.error] {
            request.fail(ConduitError(.init(kind), String(buffer: message.payload)))
        } else {
            request.answer { $0.reply(headers: headers, payload: message.payload) }
        }
    }

    private func push(_ message: Message, to target: String) {
        guard let client = ClientID(target) else {
            return logger.warning("handler process push dropped: invalid client id", metadata: ["process.push_to": "\(target)"])
        }
        var headers = message.headers
        for name in ChildHeader.reserved { headers.removeAll(anyCaseOf: name) }
        pushes.push(Message(headers: headers, payload: message.payload), to: client)
    }

    /// The child wrote something that is not a message: its output can't be trusted any more.
    /// What it was answering gets the error; it is killed and restarted.
    fileprivate func malformed(_ error: MalformedChildOutput, from incarnation: Int) {
        let state = state.value
        guard let child = state.child, child.incarnation == incarnation else { return }
        logger.error("handler process wrote malformed output; restarting it", metadata: [
            "process.pid": "\(child.process.pid)", "error.message": "\(error)",
        ])
        state.failWritten(to: incarnation, .internal("the handler process wrote malformed output (\(error)); it is restarted"))
        retire(child, because: "it wrote malformed output: \(error)")
    }

    /// The child's stdout closed: without it nothing can be answered, so it gets no more
    /// requests, and is killed a second later unless it has ended by then: a child's own exit
    /// closes its stdout too, often seen before the exit is, and must not be told as a kill.
    fileprivate func outputClosed(_ incarnation: Int) {
        guard let child = state.value.child, child.incarnation == incarnation else { return }
        if state.value.phase == .running { state.value.phase = .retiring }
        eventLoop.scheduleTask(in: .seconds(1)) {
            guard self.state.value.child?.incarnation == incarnation else { return }
            self.retire(child, because: "it closed its stdout or its stdin while running")
        }
    }

    /// Kills the child; requests from now on wait for its successor. `reason` goes with what
    /// its end is told as: "killed by signal 9" alone, a route taken down by a start-up banner
    /// on stdout named no cause.
    private func retire(_ child: RunningChild, because reason: String) {
        if state.value.phase == .running { state.value.phase = .retiring }
        if state.value.retiredBecause?.incarnation != child.incarnation { state.value.retiredBecause = (child.incarnation, reason) }
        child.process.kill()
    }

    private func exited(_ incarnation: Int, _ exit: ChildExit) {
        let state = state.value
        guard let child = state.child, child.incarnation == incarnation else {
            // It ended before its pipes were set up: handled once they are.
            if state.phase == .starting, state.incarnation == incarnation { state.earlyExit[incarnation] = exit }
            return
        }
        // What it started goes with it: a worker it forked, keeping its stdout, outlived it, one
        // more at every restart (and held the pipe, so its end was seen only 3 s later).
        child.process.killGroup()
        // A child that died after it was given requests may have died of one.
        let hadRequests = state.lastGiven == incarnation
        // Seen from its process descriptor, the exit can come before its last answers are read
        // from its stdout (a reply written just before exiting was failed "exited before
        // answering"): they are read first, to the pipe's end, as its stderr's last line is.
        // New requests wait for the next child meanwhile.
        if state.phase == .running { state.phase = .retiring }
        afterEnd(of: child.process.channel) { self.ended(child, exit, hadRequests: hadRequests) }
    }

    private func ended(_ child: RunningChild, _ exit: ChildExit, hadRequests: Bool) {
        let state = state.value
        guard state.child?.incarnation == child.incarnation else { return }
        state.child = nil
        state.parts.reset()
        state.consecutiveTimeouts = 0
        child.process.channel.close(promise: nil)
        for waiter in state.exitWaiters { waiter.succeed() }
        state.exitWaiters.removeAll()
        let stopped = state.phase == .stopped
        if !stopped {
            // Only a child that died on its own counts: one that died with requests it had been
            // given is restarted (its requests answered), else a client whose request crashes
            // every child (bad input, an exception) sent it five times and took the route down
            // for every client until the configuration changed.
            let crashedAtStartup = !hadRequests && NIODeadline.now() - child.startedAt < limits.startupWindow
            state.startupCrashes = crashedAtStartup ? state.startupCrashes + 1 : 0
        }
        let goesDown = !stopped && state.startupCrashes >= limits.maxStartupCrashes
        // No restart from here on; the reason names the last stderr line, so it waits for it.
        if goesDown { state.phase = .down }
        afterEnd(of: child.process.stderr) {
            if goesDown { self.takeDown(after: exit, child: child) }
            self.answerWritten(to: child, after: exit)
        }
        // Read 10 s more: a line read after that still goes into a route's down reason.
        eventLoop.scheduleTask(in: .seconds(13)) { child.process.stderr.close(promise: nil) }
        guard !stopped, !goesDown else { return }
        logger.warning("handler process exited; restarting it", metadata: [
            "process.pid": "\(child.process.pid)", "process.exit": "\(state.ending(of: child.incarnation, exit))",
        ])
        if NIODeadline.now() - child.startedAt > limits.maxRestartDelay { state.resetRestartDelay(limits) }
        scheduleRestart()
    }

    /// Children keep dying at start-up (a missing file, a syntax error): restarting them again
    /// would only burn CPU and fill the log, so the route goes down, saying why, until its
    /// configuration changes (a reload builds a new handler) or the host restarts.
    private func takeDown(after exit: ChildExit, child: RunningChild) {
        let state = state.value
        state.phase = .down
        state.wentDownAfter = (exit, child.incarnation)
        let reason = setDownReason(after: exit, of: child.incarnation)
        logger.error("handler process keeps crashing at start-up; route down", metadata: ["process.exit": "\(state.ending(of: child.incarnation, exit))"])
        state.failQueued(.unavailable(reason))
    }

    /// Says why the route is down, with the last child's last stderr line. Called again for a
    /// line read only after the wait for it (a loaded machine's loop can come to the pipe late).
    @discardableResult
    private func setDownReason(after exit: ChildExit, of incarnation: Int) -> String {
        let state = state.value
        let reason = "the route is down: its handler process \(state.ending(of: incarnation, exit)) within \(limits.startupWindow.nanoseconds / 1_000_000_000) s of "
            + "starting, \(limits.maxStartupCrashes) times in a row\(state.lastWords(of: incarnation)); fix it, then reload the configuration with "
            + "the route changed, or restart the host"
        downReason.withLock { $0 = reason }
        return reason
    }

    /// Answers the requests `child` took with why it died: its exit and its last stderr line.
    private func answerWritten(to child: RunningChild, after exit: ChildExit) {
        let state = state.value
        let restarted = "the handler process \(state.ending(of: child.incarnation, exit)) before answering\(state.lastWords(of: child.incarnation)); it is restarted"
        state.failWritten(to: child.incarnation, .unavailable(downReason.withLock { $0 } ?? restarted))
    }

    /// Runs `body` once, when one of the child's pipes has ended: what it wrote last may still
    /// be in the pipe when the exit is seen. Three seconds at most, if another process keeps
    /// the pipe open (one the child started, or one the host spawned at the same moment, which
    /// inherited it): a quarter second, then a second, were too short for a loaded CI machine.
    private func afterEnd(of pipe: any Channel, _ body: @escaping @Sendable () -> Void) {
        let done = NIOLoopBoundBox(false, eventLoop: eventLoop)
        let once: @Sendable () -> Void = {
            guard !done.value else { return }
            done.value = true
            body()
        }
        pipe.closeFuture.whenComplete { _ in once() }
        eventLoop.scheduleTask(in: .seconds(3)) { once() }
    }
}

/// Delivers what the stdout decoder produces to the supervisor (on the supervisor's loop).
private final class ChildOutputHandler: ChannelInboundHandler {
    typealias InboundIn = Message
    private let supervisor: ProcessSupervisor
    private let incarnation: Int

    init(supervisor: ProcessSupervisor, incarnation: Int) {
        self.supervisor = supervisor
        self.incarnation = incarnation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        supervisor.received(unwrapInboundIn(data), from: incarnation)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? MalformedChildOutput { supervisor.malformed(error, from: incarnation) }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        supervisor.outputClosed(incarnation)
    }
}
