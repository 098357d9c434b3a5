/// RFC 6455 §5.3 unmasking, eight bytes at a time.
///
/// NIO's own `webSocketUnmask` goes byte by byte through the key, which caps large messages
/// far below what the socket carries. XOR-ing a word loaded from the payload with the key
/// repeated twice in memory order unmasks eight bytes whatever the host's byte order.
enum Unmask {
    /// Writes `count` unmasked bytes of `source` to `destination` (they may be the same).
    /// `key`: the four key bytes as they lie in the frame, loaded as one word.
    static func copy(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int, key: UInt32) {
        let key64 = withUnsafeBytes(of: (key, key)) { $0.loadUnaligned(as: UInt64.self) }
        var index = 0
        while index + 8 <= count {
            let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            destination.storeBytes(of: word ^ key64, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        while index < count {
            let byte = source.load(fromByteOffset: index, as: UInt8.self)
            let keyByte = withUnsafeBytes(of: key) { $0[index % 4] }
            destination.storeBytes(of: byte ^ keyByte, toByteOffset: index, as: UInt8.self)
            index += 1
        }
    }
}
