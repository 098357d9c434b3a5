@testable import ConduitHost
import NIOCore
import NIOWebSocket
import Testing

/// The word-wise unmask gives exactly NIO's byte-wise result, for every length around the
/// word size and for buffers whose readable bytes don't start at 0.
@Suite("Unmasking")
struct UnmaskTests {
    @Test(arguments: [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 16_384, 65_537])
    func matchesNIOsByteWiseUnmask(length: Int) {
        let key = WebSocketMaskingKey.random()
        let rawKey = withUnsafeBytes(of: (key[0], key[1], key[2], key[3])) { $0.loadUnaligned(as: UInt32.self) }
        for skip in [0, 1, 3] {
            var buffer = ByteBuffer(bytes: (0..<(length + skip)).map { _ in UInt8.random(in: 0...255) })
            buffer.moveReaderIndex(forwardBy: skip)
            var expected = buffer
            expected.webSocketUnmask(key)
            var actual = ByteBuffer()
            actual.writeWithUnsafeMutableBytes(minimumWritableBytes: max(length, 1)) { out in
                buffer.withUnsafeReadableBytes { Unmask.copy(from: $0.baseAddress!, to: out.baseAddress!, count: length, key: rawKey) }
                return length
            }
            #expect(actual == expected, "length \(length), reader index \(skip)")
        }
    }
}
