import ConduitWire

/// What a client's message is to dispatch (SPEC §1, §3, §8), decided once from its headers:
/// admitting a resumed message (SPEC §9) needs the same answer before dispatch does.
enum InboundKind: Equatable {
    /// `digest`: answered with the payload's SHA-1, never dispatched.
    case digest
    /// `cancel` without `route`: stops the request with that token.
    case cancel(token: String)
    /// `ack` without `route`, `to` or `more` on a connection that does not resume (a resuming
    /// one sets `ack` aside as it decodes): there is nothing to acknowledge, and it is no chunk.
    case acknowledgement
    /// A part of a request that is not complete yet (`more=true`, or neither `route` nor `to`).
    case chunk
    /// What completes a request to `route`, or a message for the client `to`.
    case complete

    init(_ headers: Headers, route: String?) {
        if headers[HeaderName.digest] != nil {
            self = .digest
        } else if route == nil, let token = headers[HeaderName.cancel] {
            self = .cancel(token: token)
        } else if headers.hasMore || (route == nil && headers[HeaderName.to] == nil) {
            self = route == nil && !headers.hasMore && headers[ResumeHeader.ack] != nil ? .acknowledgement : .chunk
        } else {
            self = .complete
        }
    }

    /// Neither part of a request nor the end of one.
    var standsAlone: Bool {
        switch self {
        case .digest, .cancel, .acknowledgement: true
        case .chunk, .complete: false
        }
    }
}
