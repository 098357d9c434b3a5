#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ConduitWire
import NIOCore

/// A WebSocket client on a plain blocking socket, with every frame built before the run, so
/// it allocates nothing while measured: what the benchmark counts is the host's.
final class BlockingEchoClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private let socket: Int32
    /// One masked request frame (`route: echo`, `token: 7`, 64 bytes of payload).
    private let frame: [UInt8]
    /// The reply frame's size: the server's frames are unmasked, with a 2-byte header.
    private let replyBytes: Int
    private var receive = [UInt8](repeating: 0, count: 1 << 16)
    private var batch: [UInt8] = []

    init(port: Int, path: String) throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.socket = socket
        let message = try Message(headers: [HeaderName.route: "echo", HeaderName.token: "7"], payload: ByteBuffer(repeating: 0x61, count: 64)).encoded()
        let payload = Array(buffer: message)
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        frame = [0x82, 0x80 | UInt8(payload.count)] + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
        replyBytes = 2 + payload.count
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure("connect failed: errno \(errno)") }
        var noDelay: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))

        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try Self.send(Array(request.utf8), on: socket)
        var head: [UInt8] = []
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            var byte: UInt8 = 0
            guard recv(socket, &byte, 1, 0) == 1 else { throw Failure("the handshake was not answered") }
            head.append(byte)
        }
        guard String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101") else {
            throw Failure("the handshake was refused: \(String(decoding: head, as: UTF8.self))")
        }
        batch.reserveCapacity(frame.count * 64)
    }

    deinit { close(socket) }

    /// Sends `inFlight` requests in one write and reads every reply.
    func roundTrip(inFlight: Int) throws {
        batch.removeAll(keepingCapacity: true)
        for _ in 0..<inFlight { batch.append(contentsOf: frame) }
        try Self.send(batch, on: socket)
        var expected = replyBytes * inFlight
        while expected > 0 {
            let count = receive.withUnsafeMutableBytes { recv(socket, $0.baseAddress, min(expected, $0.count), 0) }
            guard count > 0 else { throw Failure("the connection closed") }
            expected -= count
        }
    }

    private static func send(_ bytes: [UInt8], on socket: Int32) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + sent, bytes.count - sent, 0) }
            guard count > 0 else { throw Failure("send failed: errno \(errno)") }
            sent += count
        }
    }
}
