import NIOWebSocket

/// RFC 6455 §5.3 unmasking, eight bytes at a time.
///
/// NIO's own `webSocketUnmask` goes byte by byte through the key, which caps large messages
/// far below what the socket carries. XOR-ing a word loaded from the payload with the key
/// repeated twice in memory order unmasks eight bytes whatever the host's byte order.
enum Unmask {
    /// Writes `count` unmasked bytes of `source` to `destination` (they may be the same).
    static func copy(
        from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int, key: WebSocketMaskingKey
    ) {
        let pattern = (key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3])
        let key64 = withUnsafeBytes(of: pattern) { $0.loadUnaligned(as: UInt64.self) }
        var index = 0
        while index + 8 <= count {
            let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            destination.storeBytes(of: word ^ key64, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < count {
            let byte = source.load(fromByteOffset: index, as: UInt8.self)
            destination.storeBytes(of: byte ^ key[index % 4], toByteOffset: index, as: UInt8.self)
            index += 1
        }
    }
}
