@testable import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOEmbedded
import Testing

/// A client on its fallback stream whose socket comes back: from the moment its handshake is
/// accepted (its 101 on the way, the client told it is back) a push waits for the socket
/// instead of going down the stream. The client reads the stream to its end before the
/// socket, so nothing was lost either way; but a push made after the client saw the socket
/// open came over the old stream, and a caller waiting for it on the socket waited in vain
/// (the JavaScript fallback tests, on CI, when the socket's loop was slow to attach it).
@Suite("A socket on its way")
struct HandshakeOnTheWayTests {
    /// A fallback stream that counts what the directory tells it.
    final class CountingStream: PushStream {
        private let counts = NIOLockedValueBox((available: 0, ended: 0))
        var available: Int { counts.withLockedValue { $0.available } }
        var ended: Int { counts.withLockedValue { $0.ended } }
        func messagesAvailable() { counts.withLockedValue { $0.available += 1 } }
        func end() { counts.withLockedValue { $0.ended += 1 } }
    }

    @Test func aPushAfterTheHandshakeWaitsForTheSocket() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let directory = sockets.directory
        let stream = CountingStream()
        guard case .attached = directory.attach(stream, for: sockets.id, resume: nil) else { Issue.record("stream refused"); return }
        sockets.push(1...1)
        #expect(try #require(directory.takeNext(for: sockets.id, stream: stream)).parts.map { $0.headers["n"] } == ["1"])

        #expect(directory.handshakeAccepted(sockets.id))
        sockets.push(2...2)
        #expect(directory.takeNext(for: sockets.id, stream: stream) == nil, "the stream took a push made after the 101")

        let socket = sockets.connect()
        socket.embeddedEventLoop.run()
        #expect(try DoubleReplacementTests.pushNumbers(writtenTo: socket) == [2])
        #expect(stream.ended == 1)
        _ = try? socket.finish(acceptAlreadyClosed: true)
    }

    /// Diagnostics agree with the client, which is told it is connected by the 101: a client
    /// that asked right after opening was not among the ids connected.
    @Test func anIdIsConnectedFromItsAcceptedHandshake() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let directory = sockets.directory
        #expect(directory.handshakeAccepted(sockets.id))
        #expect(directory.connectedIDs == [sockets.id.rawValue])
        #expect(directory.snapshot.first?.connected == true)
        directory.handshakeAbandoned(sockets.id)
        #expect(directory.connectedIDs.isEmpty)
        #expect(directory.snapshot.first?.connected == false)
    }

    @Test func anAbandonedHandshakeGivesTheStreamItsPushesBack() throws {
        let sockets = try DoubleReplacementTests.Sockets()
        let directory = sockets.directory
        let stream = CountingStream()
        guard case .attached = directory.attach(stream, for: sockets.id, resume: nil) else { Issue.record("stream refused"); return }
        #expect(directory.handshakeAccepted(sockets.id))
        #expect(directory.handshakeAccepted(sockets.id))
        sockets.push(1...2)
        #expect(directory.takeNext(for: sockets.id, stream: stream) == nil)

        directory.handshakeAbandoned(sockets.id)
        #expect(directory.takeNext(for: sockets.id, stream: stream) == nil, "another handshake is still on the way")
        let toldBefore = stream.available
        directory.handshakeAbandoned(sockets.id)
        #expect(stream.available > toldBefore, "the stream is told to take again")
        #expect(try #require(directory.takeNext(for: sockets.id, stream: stream)).parts.map { $0.headers["n"] } == ["1"])
        #expect(try #require(directory.takeNext(for: sockets.id, stream: stream)).parts.map { $0.headers["n"] } == ["2"])
        #expect(stream.ended == 0)
    }
}
