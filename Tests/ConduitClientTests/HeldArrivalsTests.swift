@testable import ConduitClient
import ConduitWire
import NIOCore
import NIOEmbedded
import Testing

/// What a socket brings behind a fallback stream is held up to 8 MiB, counted whole.
@Suite("Client: arrivals held behind a stream")
struct HeldArrivalsTests {
    private static func headers(_ bytes: Int) -> Headers {
        var headers = Headers()
        for index in 0..<(bytes / 60_000) { headers.append("h\(index)", String(repeating: "x", count: 60_000)) }
        return headers
    }

    @Test func messagesPastTheBoundStopTheSocketOnce() {
        let socket = WebSocketConnection(channel: EmbeddedChannel())
        var held = HeldArrivals()
        #expect(held.hold(.message(Message(headers: Self.headers(4_000_000))), from: socket) == nil)
        #expect(held.hold(.message(Message(headers: Self.headers(5_000_000))), from: socket) === socket)
        #expect(held.hold(.message(Message(headers: Self.headers(60_000))), from: socket) == nil, "stopped already")
        let released = held.release()
        #expect(released.arrivals.count == 3)
        #expect(released.paused === socket)
    }

    /// The paused socket closed and the next came while the stream was still read: it was never
    /// paused, and held what it read without end.
    @Test func aSocketAfterThePausedOneStopsToo() {
        let first = WebSocketConnection(channel: EmbeddedChannel())
        let second = WebSocketConnection(channel: EmbeddedChannel())
        var held = HeldArrivals()
        #expect(held.hold(.message(Message(headers: Self.headers(9_000_000))), from: first) === first)
        #expect(held.hold(.message(Message(headers: Self.headers(60_000))), from: second) === second)
        #expect(held.release().paused === second)
    }

    /// A dropped message keeps its last part's headers (up to 16 MB), which were not counted.
    @Test func aDroppedMessagesHeadersCount() {
        let socket = WebSocketConnection(channel: EmbeddedChannel())
        var held = HeldArrivals()
        let dropped = Arrival.dropped(lastPart: Self.headers(9_000_000), ConduitClientError(.protocolError, "dropped"))
        #expect(held.hold(dropped, from: socket) === socket)
    }
}
