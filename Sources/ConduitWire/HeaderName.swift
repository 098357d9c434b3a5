/// Header keys with a meaning to the host and the clients (SPEC §1–§3).
public enum HeaderName {
    public static let route = "route"
    public static let token = "token"
    /// Accepted as a synonym of `token`.
    public static let seq = "seq"
    public static let more = "more"
    public static let to = "to"
    public static let from = "from"
    public static let digest = "digest"
    public static let error = "error"
    /// On a message without `route`: cancels the sender's request with this token (SPEC §8).
    public static let cancel = "cancel"
}

extension Headers {
    public var route: String? { self[HeaderName.route] }
    /// The correlation token: `token`, or its synonym `seq`.
    public var correlation: (name: String, value: String)? {
        if let token = self[HeaderName.token] { return (HeaderName.token, token) }
        if let seq = self[HeaderName.seq] { return (HeaderName.seq, seq) }
        return nil
    }
    /// True when the message is one part of a larger payload (`more=true`).
    public var hasMore: Bool { lastValue(ofFourByteName: HeaderName.more) == "true" }
}

/// The headers of resume (SPEC §9): they belong to the connection, not to a message's content.
public enum ResumeHeader {
    /// A per-id position, stamped by the host on what it sends and by the client on what it sends.
    public static let position = positionField.description
    /// Cumulative: the sender holds every position up to this one.
    public static let ack = ackField.description
    /// The two as a layer appends them (`Message.AppendedField`).
    public static let positionField: StaticString = "pos"
    public static let ackField: StaticString = "ack"
    public static let epoch = "epoch"
    /// The route of the host's first message on a resuming connection.
    public static let resumeRoute = "conduit.resume"
    /// The route of a message that only acknowledges client positions.
    public static let ackRoute = "conduit.ack"
}

extension Headers {
    /// The host's own `conduit.resume` or `conduit.ack` (SPEC §9), which never carry `pos`: a
    /// message so routed with a `pos` was numbered as any other, so it is a handler's or a
    /// worker's, to be delivered, not obeyed (a forged greeting reset the client's epoch).
    public func isResumeControl(route: String) -> Bool {
        self.route == route && self[ResumeHeader.position] == nil
    }
}
