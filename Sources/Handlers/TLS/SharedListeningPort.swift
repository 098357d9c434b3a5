import NIOCore
import NIOPosix
import Synchronization

/// A fixed port that a route's replacement binds while the route it replaces still listens on
/// it: a reload starts the new handlers before it stops the old ones, and the echo service's
/// bind failed (EADDRINUSE), so the route could not be reloaded at all. Every listener asks the
/// kernel to share its port (`SO_REUSEPORT`), but one shares only with a listener of the same
/// route in this process: a port anything else holds (another route's echo service, another
/// host's) is still refused. (A probe and then the bind: two hosts started in the same instant
/// on one port could both pass the probe.)
enum SharedListeningPort {
    static let option = ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT))

    /// This process's listeners on fixed ports, by "host:port": their route, and how many.
    private static let held = Mutex<[String: (route: String, count: Int)]>([:])

    /// Throws (EADDRINUSE) when `port` on `host` is taken by anything but this process's
    /// listeners of `route`: a probe that does not ask to share binds it first.
    static func checkFree(host: String, port: Int, route: String, group: any EventLoopGroup) async throws {
        guard port != 0, held.withLock({ $0[key(host, port)]?.route != route }) else { return }
        let probe = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port)
            .get()
        try await probe.close()
    }

    static func hold(host: String, port: Int, route: String) {
        guard port != 0 else { return }
        held.withLock { held in
            let key = key(host, port)
            held[key] = (route, (held[key]?.count ?? 0) + 1)
        }
    }

    static func release(host: String, port: Int) {
        guard port != 0 else { return }
        held.withLock { held in
            let key = key(host, port)
            held[key] = held[key].flatMap { $0.count > 1 ? ($0.route, $0.count - 1) : nil }
        }
    }

    private static func key(_ host: String, _ port: Int) -> String { "\(host):\(port)" }
}
