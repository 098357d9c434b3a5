import ConduitWire
import NIOCore
import NIOWebSocket

/// What one request looks like on the wire and how its reply is recognised.
enum Protocol: String, CaseIterable, Sendable {
    /// Conduit messages with `route`, split into `more=true` parts above 64 KiB; the reply is
    /// complete at the part without `more`.
    case conduit
    /// One binary WebSocket frame echoed by any WebSocket echo server.
    case websocket
    /// Raw bytes echoed by a TCP echo server.
    case tcp
}

struct Workload: Sendable {
    let proto: Protocol
    let route: String
    let size: Int
    /// Resume on: requests carry `pos`, replies are acknowledged (LoadHandler).
    var resume = false
    /// Plain requests carry one more header, as long as a resumed request's `pos`.
    var extraField = false
    /// Nanoseconds the tool busy-waits per reply: how its own speed moves the server's figures.
    var toolWorkNanoseconds: UInt64 = 0

    /// The bytes of one request as they go on the wire: masked WebSocket frames, encoded and
    /// masked once here so the load tool spends no CPU per message on them (NIO's frame encoder
    /// masks byte by byte, which made the tool the bottleneck at 16 KiB), or raw TCP bytes.
    func wireBuffers() throws -> [ByteBuffer] {
        let payload = ByteBuffer(repeating: 0x61, count: size)
        switch proto {
        case .conduit:
            let headers: Headers = extraField ? [HeaderName.route: route, "n": "1234567"] : [HeaderName.route: route]
            return try Message(headers: headers, payload: payload).split().map { Self.maskedFrame(try $0.encoded()) }
        case .websocket:
            return [Self.maskedFrame(payload)]
        case .tcp:
            return [payload]
        }
    }

    /// A request of several frames, its parts numbered per request (resume); nil when a
    /// request is one frame (`numberedFrames(inFlight:)`).
    func numberedParts() -> NumberedParts? {
        guard size > WireLimits.maxPayloadBytes else { return nil }
        return NumberedParts(parts: Message(headers: [HeaderName.route: route], payload: ByteBuffer(repeating: 0x61, count: size)).split())
    }

    /// The templates of one-frame numbered requests; nil when requests take several frames.
    func numberedFrames(inFlight: Int) throws -> NumberedFrames? {
        guard size <= WireLimits.maxPayloadBytes else { return nil }
        let request = Headers([(HeaderName.route, route)])
        let payload = ByteBuffer(repeating: 0x61, count: size)
        return NumberedFrames(
            templates: try (1...NumberedFrames.maxDigits).map { try Self.numberedFrame(request, ResumeHeader.position, digits: $0, payload: payload) },
            inFlight: inFlight)
    }

    /// The templates of bare acknowledgements (`ack` alone), one per digit count: an ack made
    /// from scratch every 32 replies cost the tool more than the host's numbering.
    static func acknowledgementFrames() throws -> [NumberedFrame] {
        try (1...NumberedFrames.maxDigits).map { try numberedFrame(Headers(), ResumeHeader.ack, digits: $0, payload: ByteBuffer()) }
    }

    /// A one-frame request numbered `pos`, carrying `ack` too: the tool acknowledges on the
    /// request it sends next (SPEC §9 allows `ack` on any message), as a client that answers in
    /// the same read can. One template per pair of digit counts, made when first needed.
    func acknowledgingFrame(positionDigits: Int, ackDigits: Int) throws -> AcknowledgingFrame {
        let (frame, digits) = try Self.template(
            Headers([(HeaderName.route, route)]), numbering: [(ResumeHeader.position, positionDigits), (ResumeHeader.ack, ackDigits)],
            payload: ByteBuffer(repeating: 0x61, count: size))
        return AcknowledgingFrame(masked: frame, position: digits[0], ack: digits[1])
    }

    /// The template of a one-frame message with `headers`, then `name` with a `digits`-digit value.
    static func numberedFrame(_ headers: Headers, _ name: String, digits: Int, payload: ByteBuffer) throws -> NumberedFrame {
        let (frame, places) = try template(headers, numbering: [(name, digits)], payload: payload)
        return NumberedFrame(masked: frame, digits: places[0])
    }

    /// A masked one-frame message with `headers`, then each numbered field with a value of its
    /// count of zeros; and where each field's digits are.
    private static func template(_ headers: Headers, numbering fields: [(name: String, digits: Int)], payload: ByteBuffer) throws -> (ByteBuffer, [MaskedDigits]) {
        var numbered = headers
        for field in fields { numbered.append(field.name, String(repeating: "0", count: field.digits)) }
        let message = Message(headers: numbered, payload: payload)
        let frame = maskedFrame(try message.encoded())
        // The frame header (2 or 4 bytes, then the key), the header count, the headers before,
        // then each field's length-prefixed name and value: where its digits start.
        let frameHeader = frame.readableBytes - message.encodedSize
        var inMessage = 1 + headers.reduce(0) { $0 + 3 + $1.name.utf8.count + $1.value.utf8.count }
        var places: [MaskedDigits] = []
        for field in fields {
            inMessage += 1 + field.name.utf8.count + 2
            places.append(MaskedDigits(count: field.digits, at: frameHeader + inMessage, maskPhase: inMessage))
            inMessage += field.digits
        }
        return (frame, places)
    }

    /// The masking key of every request frame.
    static let maskKey: WebSocketMaskingKey = [0x1F, 0x2E, 0x3D, 0x4C]

    /// A final binary frame carrying `payload`, masked as a client must (RFC 6455 §5.2), with
    /// NIO's masking (made per request with resume, so it must be cheap).
    static func maskedFrame(_ payload: ByteBuffer) -> ByteBuffer {
        let key = maskKey
        var frame = ByteBuffer()
        frame.reserveCapacity(payload.readableBytes + 14)
        frame.writeInteger(UInt8(0x82))
        switch payload.readableBytes {
        case ..<126: frame.writeInteger(UInt8(0x80 | payload.readableBytes))
        case ...0xFFFF:
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(payload.readableBytes))
        default:
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(payload.readableBytes))
        }
        frame.writeBytes(key)
        var masked = payload
        masked.webSocketMask(key)
        frame.writeBuffer(&masked)
        return frame
    }

    /// Whether a received data frame ends a reply; `headers`: its decoded headers (Conduit).
    func endsReply(_ frame: WebSocketFrame, headers: Headers?) -> Bool {
        guard frame.fin else { return false }
        guard proto == .conduit, let headers else { return true }
        // Resume's greeting and acknowledgements are not replies.
        return !headers.hasMore && headers.route != ResumeHeader.resumeRoute && headers.route != ResumeHeader.ackRoute
    }
}

/// Masked one-frame requests, one for each length of a `pos` value: positions go out with
/// as many digits as they have, as a client sends them.
struct NumberedFrames {
    /// UInt64's most.
    static let maxDigits = 20
    /// Index: the digit count less one.
    let templates: [NumberedFrame]
    /// Frames sent before, rewritten for a later request once the channel has let them go
    /// (their storage is this ring's alone again): a plain request is one ready-made buffer
    /// written again and again, so a numbered one must not cost a new buffer each either.
    private var ring: [ByteBuffer] = []
    private var slot = 0
    private var ringDigits = 0
    /// About two turns of the requests in flight: enough for the channel to have let a frame go
    /// before its turn comes again, few enough to stay in the cache with many connections.
    private let ringSize: Int

    init(templates: [NumberedFrame], inFlight: Int) {
        self.templates = templates
        ringSize = max(8, 2 * inFlight)
    }

    mutating func frame(position: UInt64) -> ByteBuffer {
        let count = position.decimalDigitCount
        // Only the digits' place is copied out of the template: copying the template (its
        // buffer) cost a retain and a release per request.
        let digits = templates[count - 1].digits
        if count != ringDigits {
            ring = []
            slot = 0
            ringDigits = count
        }
        defer { slot = (slot + 1) % ringSize }
        guard slot < ring.count else {
            ring.append(templates[count - 1].frame(position: position))
            return ring[slot]
        }
        if ring[slot].modifyIfUniquelyOwned({ digits.write(position, into: &$0) }) == nil {
            ring[slot] = templates[count - 1].frame(position: position)
        }
        return ring[slot]
    }
}

/// A masked one-frame message whose numbered field has a value of `digits.count` digits,
/// rewritten per message.
struct NumberedFrame {
    let masked: ByteBuffer
    let digits: MaskedDigits

    /// A new frame for `number`.
    func frame(position number: UInt64) -> ByteBuffer {
        var frame = masked
        digits.write(number, into: &frame)
        return frame
    }
}

/// A masked one-frame request whose `pos` and `ack` values are rewritten per request.
struct AcknowledgingFrame {
    let masked: ByteBuffer
    let position: MaskedDigits
    let ack: MaskedDigits

    func frame(position number: UInt64, ack: UInt64) -> ByteBuffer {
        var frame = masked
        position.write(number, into: &frame)
        self.ack.write(ack, into: &frame)
        return frame
    }
}

/// Where a masked frame's digits are, with the masking key's bytes that fall on them.
struct MaskedDigits {
    let count: Int
    /// Where the digits start in the frame.
    let offset: Int
    /// The key turned to the digits' phase in the masked payload: byte `i % 4` masks digit `i`.
    private let key: UInt32

    init(count: Int, at offset: Int, maskPhase: Int) {
        self.count = count
        self.offset = offset
        var key: UInt32 = 0
        for index in 0..<4 { key |= UInt32(Workload.maskKey[(maskPhase + index) % 4]) << (8 * index) }
        self.key = key
    }

    /// Writes `number`'s digits, masked, into a frame made from the template.
    func write(_ number: UInt64, into frame: inout ByteBuffer) {
        frame.withUnsafeMutableReadableBytes { bytes in
            var value = number
            var index = count
            while index > 0 {
                index -= 1
                let mask = UInt8(truncatingIfNeeded: key >> (8 * (index & 3)))
                bytes[offset + index] = (0x30 + UInt8(truncatingIfNeeded: value % 10)) ^ mask
                value /= 10
            }
        }
    }
}
