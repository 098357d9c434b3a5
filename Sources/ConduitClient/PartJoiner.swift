import ConduitWire

/// What the host sent, parts joined: a message, or one dropped whole (past the joining limit,
/// or with a part that doesn't decode), told by its last part's headers. Resume counts the
/// dropped one's position as received: left out, the acknowledgement stuck below it and a
/// reconnect asked for it again (and its error came again).
enum Arrival: Sendable {
    /// `parts`: the frames it was joined from, each with its own position (resume).
    case message(Message, parts: Int = 1)
    case dropped(lastPart: Headers, ConduitClientError)
}

/// Joins host→client parts (SPEC §1), the socket's and the fallback stream's: every part with
/// `more=true` is held until one without it, up to `limit` bytes. A message past it, or with a
/// part that does not decode, is dropped whole: its later parts, up to its last, are skipped,
/// never delivered as a message of their own or joined around a hole.
struct PartJoiner {
    private var assembler: ChunkAssembler
    /// Why the message being read is dropped: reported with its last part.
    private var dropping: ConduitClientError?
    /// The parts held.
    private var held = 0

    init(limit: Int = WebSocketConnection.maxJoinedBytes) {
        assembler = ChunkAssembler(limit: limit)
    }

    /// A frame that doesn't decode can't say whether it was its message's last part. With
    /// parts held, or a dropped message's rest being skipped, it is taken for one of theirs:
    /// the message is dropped through its next last part (joined, the parts around it were
    /// delivered as one message with a hole). With none held only it is lost: the error to
    /// report now.
    mutating func undecodable(_ error: ConduitClientError) -> ConduitClientError? {
        guard dropping == nil else { return nil }
        guard assembler.isEmpty else {
            assembler.reset()
            held = 0
            dropping = error
            return nil
        }
        return error
    }

    /// The whole message, or the one dropped, once its last part is in; nil before.
    mutating func add(_ part: Message) -> Arrival? {
        let isPart = part.headers.hasMore
        if let reason = dropping {
            guard !isPart else { return nil }
            dropping = nil
            return .dropped(lastPart: part.headers, reason)
        }
        do {
            guard isPart else {
                defer { held = 0 }
                return .message(Message(headers: part.headers, payload: try assembler.complete(with: part.payload)), parts: held + 1)
            }
            try assembler.append(part.payload)
            held += 1
            return nil
        } catch {
            held = 0
            // Past the limit (the assembler emptied itself).
            let reason = ConduitClientError(.protocolError, "a message from the host is dropped: \(error)")
            guard isPart else { return .dropped(lastPart: part.headers, reason) }
            dropping = reason
            return nil
        }
    }
}
