public import NIOCore

/// A file the IPC listener serves as is (SPEC §6: `/` the status page, `/conduit.js` the
/// JavaScript client). The host serves whatever it is given, keyed by path (`/`, `/conduit.js`).
public struct StaticResource: Sendable {
    public var contentType: String
    public var body: ByteBuffer

    public init(contentType: String, body: ByteBuffer) {
        self.contentType = contentType
        self.body = body
    }
}
