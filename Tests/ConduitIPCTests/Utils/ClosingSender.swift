import Glibc

/// Sends `bytes` and closes the sending side so that the last bytes and the FIN go in one
/// segment (TCP_CORK held back the last partial one), which the host reads in one go: its
/// request and its connection's end arrive together. Returns once the host has closed too.
func sendEndingTogether(_ bytes: [UInt8], port: Int) throws {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw ClosingSenderError.failed("socket") }
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw ClosingSenderError.failed("connect") }
    var on: Int32 = 1
    setsockopt(socket, Int32(IPPROTO_TCP), TCP_CORK, &on, socklen_t(MemoryLayout<Int32>.size))
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var sent = 0
    while sent < bytes.count {
        let written = bytes[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
        guard written > 0 else { throw ClosingSenderError.failed("send") }
        sent += written
    }
    shutdown(socket, Int32(SHUT_WR))
    var scratch = [UInt8](repeating: 0, count: 4096)
    while recv(socket, &scratch, scratch.count, 0) > 0 {}
}

enum ClosingSenderError: Error {
    case failed(String)
}
