public import NIOCore

/// One Conduit message: ordered headers and a binary payload.
///
/// The payload is a `ByteBuffer`; a decoded message's payload is a slice of the buffer it was
/// decoded from, so decoding never copies payload bytes.
public struct Message: Sendable, Equatable {
    public var headers: Headers
    public var payload: ByteBuffer

    public init(headers: Headers = [:], payload: ByteBuffer = ByteBuffer()) {
        self.headers = headers
        self.payload = payload
    }

    public init(headers: Headers, payload bytes: some Sequence<UInt8>) {
        self.init(headers: headers, payload: ByteBuffer(bytes: bytes))
    }
}
