import NIOCore
import NIOWebSocket

extension ByteBuffer {
    /// A client frame's payload, unmasked into a new buffer eight bytes at a time.
    ///
    /// NIO's own `webSocketUnmask` goes byte by byte through the key, which caps large
    /// messages far below what the socket carries (issue 6's 16 KiB bandwidth target). And a
    /// frame's payload shares its storage with the frame decoder's buffer, so unmasking it in
    /// place would first copy it (copy-on-write) and then pass over it again: reading the
    /// masked bytes and writing the unmasked ones into a fresh buffer does both in one pass.
    func unmasked(_ key: WebSocketMaskingKey, allocator: ByteBufferAllocator) -> ByteBuffer {
        // The key twice, in memory order: XOR-ing a word loaded from the payload with it
        // unmasks eight bytes whatever the host's byte order.
        let pattern = (key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3])
        let key64 = withUnsafeBytes(of: pattern) { $0.loadUnaligned(as: UInt64.self) }
        var output = allocator.buffer(capacity: readableBytes)
        _ = withUnsafeReadableBytes { input in
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: input.count) { bytes in
                let count = input.count
                var index = 0
                while index + 8 <= count {
                    let word = input.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    bytes.storeBytes(of: word ^ key64, toByteOffset: index, as: UInt64.self)
                    index += 8
                }
                while index < count {
                    bytes[index] = input[index] ^ key[index % 4]
                    index += 1
                }
                return count
            }
        }
        return output
    }
}
