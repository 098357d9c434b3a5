import ConduitKit
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// Sockets coming and going: attach, replacement, detach and the id's grace period.
extension ClientDirectory {
    /// Makes `session` the id's socket; an older one is closed with 1000 `replaced`. What was
    /// buffered for the id is sent first, in order — after what the replaced socket had not
    /// written yet, which it hands over as it closes (`detach`). Called on the session's event
    /// loop, so a push from another thread (which hops there) can't overtake the buffered ones.
    func attach(_ session: Session) {
        session.channel.eventLoop.preconditionInEventLoop()
        // Checked under the table's lock, which a pause's closing of all sessions also takes:
        // a handshake that completes while the server is being paused is either refused here
        // or among the sessions that the pause closes.
        var outrun = false
        let admitted: (Session?, CircularBuffer<MessageQueue.Entry>, ResumeStart?)? = slots.withLockedValue { slots in
            guard !paused.withLockedValue({ $0 }) else {
                slots[session.client]?.handshakeEnded()
                return nil
            }
            // A socket that arrived earlier than the id's current one (its handshake finished
            // later) replaces nothing: it is the one replaced (`ArrivalOrder`).
            if let current = slots[session.client]?.session, current.arrival > session.arrival {
                slots[session.client]!.handshakeEnded()
                outrun = true
                return nil
            }
            let replaced = install(session, in: &slots[session.client, default: newSlot()])
            events.enqueue(replaced == nil ? .connected(session.client) : .replaced(session.client))
            let resume = startResume(session.resumeRequest, writer: session, in: &slots[session.client]!)
            // A socket replaced before the last one went may still hand back older messages.
            let buffered = slots[session.client]!.replaced.isEmpty ? slots[session.client]!.buffer.takeAll() : []
            return (replaced, buffered, resume)
        }
        guard let (replaced, buffered, resume) = admitted else {
            if outrun { return session.refuse(code: .normalClosure, reason: "replaced") }
            session.refuse(code: .goingAway, reason: "paused")
            return
        }
        if let resume { session.beginResume(resume.state, resume.greeting) }
        if !buffered.isEmpty { session.sendOnLoop(batch: buffered) }
        queueShrank(for: session.client)
        replaced?.close(code: .normalClosure, reason: "replaced")
        events.tellWaiting(untilTold: true)
    }

    /// Makes `session` the slot's socket, ending a fallback stream; returns the replaced socket.
    private func install(_ session: Session, in slot: inout Slot) -> Session? {
        let old = slot.session
        slot.session = session
        slot.announced = true
        slot.stream?.end()
        slot.stream = nil
        slot.handshakeEnded()
        endGrace(session.client)
        // A drain scheduled for the old socket finds it gone.
        slot.draining = false
        if let old { slot.replaced.append(HandOver(session: old)) }
        slot.adopt(session.cancellations)
        return old
    }

    /// Cancels `token` among the requests of the id's other sockets, the newest first. Looked
    /// at only for a cancel the socket's own registry did not know.
    func cancel(_ token: String, of client: ClientID, besides own: CancellationRegistry) -> (CancellationRegistry.Cancelled, in: CancellationRegistry)? {
        let registries = slots.withLockedValue { $0[client]?.cancellations ?? [] }
        for registry in registries.reversed() where registry !== own {
            if let cancelled = registry.cancel(token) { return (cancelled, registry) }
        }
        return nil
    }

    typealias ResumeStart = (state: ResumeState, greeting: ResumeState.Greeting)

    /// A resuming connect takes over (or starts) the id's resume state, `writer` numbering from
    /// now on; a plain one ends it (SPEC §9).
    func startResume(_ request: ResumeRequest?, writer: AnyObject, in slot: inout Slot) -> ResumeStart? {
        guard let request else {
            slot.resume?.end()
            slot.resume = nil
            return nil
        }
        let state = slot.resume ?? ResumeState(windowLimit: settings.resumeWindowBytes, budget: budget)
        slot.resume = state
        let greeting = state.resume(request, writer: writer)
        placeCarried(greeting.carried, in: &slot)
        return (state, greeting)
    }

    /// Messages a reset carried over were sent before anything else that waits for the id: they
    /// go first, ahead of its buffer or, while replaced sockets still have to hand back what
    /// they did not write, ahead of that.
    private func placeCarried(_ carried: CircularBuffer<MessageQueue.Entry>, in slot: inout Slot) {
        guard !carried.isEmpty else { return }
        guard slot.replaced.isEmpty else { return slot.replaced[0].carried.append(contentsOf: carried) }
        let waiting = slot.buffer.takeAll()
        // Their bytes are reserved, and they were accepted once: no bound of the buffer drops them.
        for entry in carried { slot.buffer.takeOver(entry) }
        for entry in waiting { slot.buffer.takeOver(entry) }
    }

    /// Forgets `session` if it is still the id's socket and starts the grace period. `unsent`,
    /// what the socket had accepted but not written, goes back to the front of the id's buffer
    /// in the same step, so no newer push can come before it; if a new socket replaced this
    /// one, it receives them now, ahead of everything pushed since.
    func detach(_ session: Session, unsent: CircularBuffer<MessageQueue.Entry>) {
        let (wasCurrent, drainInto): (Bool, Session?) = withSlot(session.client) { slot in
            let wasCurrent = slot.session === session
            if wasCurrent {
                slot.session = nil
                slot.draining = false
                events.enqueue(.disconnected(session.client))
                if slot.isAway { startGrace(session.client) }
                if slot.stream == nil { slot.resume?.idle() }
            }
            // Handed over to a new socket: its own bound applies as they reach its queue.
            let away = slot.session == nil
            slot.buffer.byteLimit = away ? settings.pushBufferBytes : max(settings.pushBufferBytes, settings.outboundQueueBytes)
            slot.buffer.countLimit = away ? settings.pushBufferMessages : max(settings.pushBufferMessages, settings.outboundQueueMessages)
            handBack(unsent, from: session, in: &slot)
            // A replaced socket that closes after its id expired would otherwise leave a slot
            // that never expires.
            startGraceIfAway(session.client, in: &slot)
            slot.stream?.messagesAvailable()
            guard let current = slot.session, slot.replaced.isEmpty, !slot.draining, !slot.buffer.isEmpty else {
                return (wasCurrent, nil)
            }
            slot.draining = true
            return (wasCurrent, current)
        }
        if let drainInto { drainInto.channel.eventLoop.execute { self.drain(into: drainInto) } }
        // On the socket's loop after what runs there now: a push that closed the socket
        // (the close policy) may come from a handler holding a lock its `clientEvent` takes.
        if wasCurrent { session.channel.eventLoop.execute { self.events.tellWaiting() } }
    }

    /// Puts what `session` had not written back at the front of the id's buffer; a replaced
    /// socket's is held until every replaced socket has handed back, then all of it goes in
    /// order, the oldest socket's first.
    private func handBack(_ unsent: CircularBuffer<MessageQueue.Entry>, from session: Session, in slot: inout Slot) {
        guard let index = slot.replaced.firstIndex(where: { $0.session === session }) else {
            slot.dropped += slot.buffer.prepend(unsent, overflow: windowOverflow(of: slot))
            return
        }
        var handedBack = slot.replaced[index].unsent ?? CircularBuffer()
        handedBack.append(contentsOf: unsent)
        slot.replaced[index].unsent = handedBack
        guard slot.replaced.allSatisfy({ $0.unsent != nil }) else { return }
        // In one step, the oldest socket's first: the window takes the oldest of all of them.
        let oldestFirst = slot.replaced.flatMap { $0.carried + $0.unsent! }
        slot.replaced = []
        slot.dropped += slot.buffer.prepend(oldestFirst, overflow: windowOverflow(of: slot))
    }

    /// A handshake for the id was accepted; its 101 is about to be written. Until the socket
    /// attaches (or the handshake fails: `handshakeAbandoned`) pushes wait in its buffer.
    /// False, and nothing kept, for a new id the table has no place for.
    func handshakeAccepted(_ client: ClientID) -> Bool {
        withPlacedSlot(client) { (slot: inout Slot) -> Void in
            slot.handshakes += 1
            endGrace(client)
        } != nil
    }

    /// The connection closed before its socket attached.
    func handshakeAbandoned(_ client: ClientID) {
        withSlot(client) { slot in
            slot.handshakeEnded()
            if slot.isAway { startGrace(client) }
        }
    }

    /// An id named over IPC (an invocation's `id=`): it lives for one grace period from now
    /// unless a socket or a stream opens for it, like an id whose socket just closed. False,
    /// and nothing kept, for a new id the table has no place for. `cancellations`: the
    /// invoking connection's, which a cancel on the id's socket reaches.
    func touch(_ client: ClientID, cancellations: CancellationRegistry? = nil) -> Bool {
        let placed: Void? = withPlacedSlot(client) { slot in
            if let cancellations { slot.adopt(cancellations) }
            if slot.isAway { startGrace(client) }
            if slot.announce() { events.enqueue(.connected(client)) }
        }
        events.tellWaiting(untilTold: true)
        return placed != nil
    }

    /// While paused, ids don't expire: a pause is not a client leaving.
    func setPaused(_ isPaused: Bool) {
        paused.withLockedValue { $0 = isPaused }
        // Paused, the timer ends nothing; after, every id away has its grace period again.
        guard !isPaused else { return }
        slots.withLockedValue { slots in
            for (client, slot) in slots where slot.isAway { startGrace(client) }
        }
    }
}
