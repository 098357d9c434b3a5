import Glibc

/// A TCP socket to the host driven by plain blocking calls, for what a NIO client does not
/// let a test choose: when the FIN goes (with the last bytes, `TCP_CORK`). Run it off the
/// cooperative pool (`offThePool`).
final class BlockingSocket: Sendable {
    private let descriptor: Int32

    /// `receiveBufferBytes`: a small receive buffer, for a caller that stops reading.
    init(port: Int, receiveBufferBytes: Int32? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BlockingSocketError.failed("socket") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setOption(SOL_SOCKET, SO_RCVTIMEO, &timeout)
        if var receiveBufferBytes { setOption(SOL_SOCKET, SO_RCVBUF, &receiveBufferBytes) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw BlockingSocketError.failed("connect")
        }
    }

    deinit { close(descriptor) }

    /// Holds back partial segments until the sending side closes, which sends them with the FIN.
    func cork() {
        var on: Int32 = 1
        setOption(Int32(IPPROTO_TCP), TCP_CORK, &on)
    }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let written = bytes[sent...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, 0) }
            guard written > 0 else { throw BlockingSocketError.failed("send") }
            sent += written
        }
    }

    func closeSending() { shutdown(descriptor, Int32(SHUT_WR)) }

    /// Reads exactly `count` bytes (fewer if the host closes, or 10 s pass without a byte).
    func receive(count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let read = bytes[received...].withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard read > 0 else { break }
            received += read
        }
        return Array(bytes[..<received])
    }

    /// Reads and drops everything until the host closes (or 10 s pass without a byte); returns
    /// how many bytes that was.
    @discardableResult
    func drainUntilClosed() -> Int {
        var scratch = [UInt8](repeating: 0, count: 4096)
        var total = 0
        while case let read = recv(descriptor, &scratch, scratch.count, 0), read > 0 { total += read }
        return total
    }

    private func setOption<T: BitwiseCopyable>(_ level: Int32, _ name: Int32, _ value: inout T) {
        _ = withUnsafeBytes(of: &value) { setsockopt(descriptor, level, name, $0.baseAddress, socklen_t($0.count)) }
    }
}

enum BlockingSocketError: Error {
    case failed(String)
}
