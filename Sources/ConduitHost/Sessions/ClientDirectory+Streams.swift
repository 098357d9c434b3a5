import ConduitKit
import ConduitWire
import NIOConcurrencyHelpers

/// IPC fallback streams (SPEC §6): an id without a socket may have one.
extension ClientDirectory {
    enum StreamAttachment {
        /// The id has an open socket: the socket receives its pushes.
        case refused
        /// The id is new and the table has no place for it.
        case noPlace
        /// The stream receives the id's pushes, after the greeting when it resumes (SPEC §9).
        case attached(ResumeState.Greeting?)
    }

    /// Makes `stream` the id's fallback receiver, ending an older one; `resume` as for a socket.
    /// The caller writes the greeting before the stream's first pump.
    func attach(_ stream: any PushStream, for client: ClientID, resume: ResumeRequest?) -> StreamAttachment {
        let attachment = withPlacedSlot(client) { slot -> StreamAttachment in
            guard slot.session == nil else { return .refused }
            slot.stream?.end()
            slot.stream = stream
            endGrace(client)
            if slot.announce() { events.enqueue(.connected(client)) }
            return .attached(startResume(resume, writer: stream, in: &slot)?.greeting)
        } ?? .noPlace
        events.tellWaiting(untilTold: true)
        if case .attached = attachment { stream.messagesAvailable() }
        return attachment
    }

    /// The oldest buffered push for `stream`'s id, removed, as the parts to write (numbered if
    /// the id resumes) and the bytes of the budget it still holds, which the stream gives back
    /// once its connection has written them (taken back at once, a stream that did not read held
    /// up to 16 MiB in its channel outside the budget); nil when none waits, when the stream is
    /// no longer the id's receiver (a socket or another stream took over), or while a socket's
    /// handshake for the id is accepted: its client is told it is back, and a push made after
    /// that must come over it.
    func takeNext(for client: ClientID, stream: any PushStream) -> (parts: [Message], bytes: Int)? {
        let (taken, waiters): ((parts: [Message], bytes: Int)?, [@Sendable () -> Void]) = slots.withLockedValue { slots in
            guard slots[client]?.stream === stream, slots[client]?.replaced.isEmpty == true, slots[client]?.handshakes == 0,
                  let entry = slots[client]?.buffer.popFirst(keepReservation: true)
            else { return (nil, []) }
            let message = entry.message
            // Under the lock the stream is the id's writer: numbering can't be refused.
            let parts = slots[client]?.resume?.stamp(splitting: message, writer: ObjectIdentifier(stream)) ?? message.split()
            return ((parts, entry.bytes), takeWaitersIfWritable(client, in: &slots))
        }
        for waiter in waiters { waiter() }
        return taken
    }

    /// Forgets `stream` if it is still the id's receiver; the id's grace period starts.
    func detach(_ stream: any PushStream, for client: ClientID) {
        slots.withLockedValue { slots in
            guard slots[client]?.stream === stream else { return }
            slots[client]!.stream = nil
            guard slots[client]!.session == nil else { return }
            slots[client]!.resume?.idle()
            if slots[client]!.isAway { startGrace(client) }
        }
    }
}
