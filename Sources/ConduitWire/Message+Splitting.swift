import NIOCore

extension Message {
    /// Splits a message whose payload exceeds one frame into parts (SPEC §1): every part but
    /// the last carries `more=true` and the same headers. A message that fits is returned alone.
    /// Parts are slices of the original payload, not copies.
    public func split(maxPayloadBytes: Int = WireLimits.maxPayloadBytes) -> [Message] {
        precondition(maxPayloadBytes > 0, "a part must carry at least one byte")
        guard payload.readableBytes > maxPayloadBytes else { return [self] }
        var remaining = payload
        var partHeaders = headers
        partHeaders.replaceOrAppend(HeaderName.more, "true")
        var parts: [Message] = []
        parts.reserveCapacity(remaining.readableBytes / maxPayloadBytes + 1)
        while remaining.readableBytes > maxPayloadBytes {
            parts.append(Message(headers: partHeaders, payload: remaining.readSlice(length: maxPayloadBytes)!))
        }
        var lastHeaders = headers
        lastHeaders.removeAll(HeaderName.more)
        parts.append(Message(headers: lastHeaders, payload: remaining))
        return parts
    }

    /// A client's digest check or cancellation is answered or applied as the one message it
    /// is (SPEC §3, §8): sent in parts, each part carrying its headers was answered alone (a
    /// wrong digest a part), and parts without them were queued as chunks that the client's
    /// next request was joined to. Such a message's payload must fit one frame.
    public func validateStandsAloneInOneFrame() throws(WireError) {
        guard payload.readableBytes > WireLimits.maxPayloadBytes,
            headers[HeaderName.digest] != nil || (headers.route == nil && headers[HeaderName.cancel] != nil)
        else { return }
        throw WireError(
            .payloadTooLarge,
            "a digest check or a cancellation is one message: a payload of \(payload.readableBytes) bytes, at most \(WireLimits.maxPayloadBytes)")
    }
}
