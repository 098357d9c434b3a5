import ConduitWire
import NIOCore

/// Masked requests of several frames (above 64 KiB), each part numbered with its own `pos`,
/// as both clients number them. Per part and digit count, a template made when first needed:
/// the frame's head (frame header and message headers, whose digits are rewritten per request)
/// and its masked payload, which every request shares. Encoding and masking a whole request
/// per request (NIO masks byte by byte) made the tool the bottleneck of the 1 MiB workload.
struct NumberedParts {
    private struct Template {
        let head: NumberedFrame
        let payload: ByteBuffer
    }

    private let parts: [Message]
    /// By part index × 100 + digit count.
    private var templates: [Int: Template] = [:]

    /// `parts`: the request split as it goes on the wire, without positions.
    init(parts: [Message]) {
        self.parts = parts
    }

    var count: Int { parts.count }

    /// The frames of one request whose parts are numbered from `first`, in order.
    mutating func frames(from first: UInt64) throws -> [ByteBuffer] {
        var frames: [ByteBuffer] = []
        frames.reserveCapacity(2 * parts.count)
        for index in parts.indices {
            let position = first + UInt64(index)
            let template = try self.template(part: index, digits: position.decimalDigitCount)
            frames.append(template.head.frame(position: position))
            frames.append(template.payload)
        }
        return frames
    }

    private mutating func template(part index: Int, digits: Int) throws -> Template {
        let key = index * 100 + digits
        if let template = templates[key] { return template }
        let part = parts[index]
        let frame = try Workload.numberedFrame(part.headers, ResumeHeader.position, digits: digits, payload: part.payload)
        let headLength = frame.masked.readableBytes - part.payload.readableBytes
        let template = Template(
            head: NumberedFrame(masked: ByteBuffer(buffer: frame.masked.getSlice(at: frame.masked.readerIndex, length: headLength)!), digits: frame.digits),
            payload: frame.masked.getSlice(at: frame.masked.readerIndex + headLength, length: part.payload.readableBytes)!)
        templates[key] = template
        return template
    }
}
