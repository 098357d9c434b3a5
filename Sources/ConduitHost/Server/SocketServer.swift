import NIOCore
import NIOWebSocket

/// The Conduit socket server's life (SPEC §6 pause/resume): listening, or paused with every
/// socket closed and pushes buffered per id. An actor, so a start and a stop never interleave.
actor SocketServer {
    private let listener: WebSocketListener
    private let directory: ClientDirectory
    private let host: String
    /// 0: a new ephemeral port at every start.
    private let configuredPort: Int
    private var channel: (any Channel)?

    init(listener: WebSocketListener, directory: ClientDirectory, host: String, configuredPort: Int) {
        self.listener = listener
        self.directory = directory
        self.host = host
        self.configuredPort = configuredPort
    }

    /// The listening port; nil while paused.
    var port: Int? { channel?.localAddress?.port }

    /// Binds (a no-op when already listening). Throws when the port can't be bound.
    func start() async throws {
        guard channel == nil else { return }
        // Unpaused before the listener accepts: a socket accepted in between got its 101 and
        // was then closed as paused by a server that was starting.
        directory.setPaused(false)
        do {
            channel = try await listener.bind(host: host, port: configuredPort)
        } catch {
            directory.setPaused(true)
            throw error
        }
    }

    /// Stops listening and closes every socket with `code` (clients see a close frame), and
    /// every connection whose handshake is not done; returns once the sockets are closed.
    /// Pushes made meanwhile are buffered per id.
    func stop(code: WebSocketErrorCode, reason: String) async {
        directory.setPaused(true)
        let server = channel
        channel = nil
        try? await server?.close()
        // After `setPaused`: a handshake that gets past this is refused when it attaches.
        listener.pending.closeAll()
        let sessions = directory.sessions
        for session in sessions { session.close(code: code, reason: reason) }
        for session in sessions { try? await session.channel.closeFuture.get() }
    }
}
