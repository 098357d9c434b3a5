import NIOCore
import NIOPosix

/// A TCP listener that takes connections and never answers: what a client meets when the port
/// it knows now belongs to something else.
public final class SilentTCPServer: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    public static func start() async throws -> SilentTCPServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return SilentTCPServer(channel: channel)
    }

    public var port: Int { channel.localAddress!.port! }

    public func stop() async throws {
        try await channel.close()
    }
}
