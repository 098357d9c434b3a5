import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// `GET /internal.conduit.events?id=`: a client whose socket is down reads its pushes over IPC.
@Suite("IPC fallback stream", .serialized, .timeLimit(.minutes(1)))
struct FallbackStreamTests {
    @Test func streamDeliversBufferedAndLivePushesThenASocketTakesOver() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("9")!
            let socket = try await host.connect(client: "9")
            try await socket.close()
            try await socket.waitUntilClosed()
            try await waitUntil { host.client("9")?.connected == false }
            for n in 1...3 { host.host.directory.push(numberedPush(n), to: id) }

            let received = NIOLockedValueBox<[Message]>([])
            let reader = Task {
                try await host.ipc().events(for: "9") { message in
                    received.withLockedValue { $0.append(message) }
                    return true
                }
            }
            try await waitUntil { received.withLockedValue { $0.count } == 3 }
            #expect(host.client("9")?.streaming == true)
            for n in 4...6 { host.host.directory.push(numberedPush(n), to: id) }
            var large = numberedPush(7)
            large.payload = ByteBuffer(repeating: 7, count: 100_000)
            host.host.directory.push(large, to: id)
            try await waitUntil { received.withLockedValue { $0.count } == 8 }
            let messages = received.withLockedValue { $0 }
            #expect(messages.prefix(6).map { $0.headers["n"] } == (1...6).map { "\($0)" })
            #expect(messages[6].headers.hasMore && messages[6].payload.readableBytes == WireLimits.maxPayloadBytes)
            #expect(!messages[7].headers.hasMore && messages[7].payload.readableBytes == 100_000 - WireLimits.maxPayloadBytes)
            #expect(host.client("9")?.buffered == 0)

            // A socket for the id takes over: the stream ends, later pushes go to the socket only.
            let again = try await host.connect(client: "9")
            try await reader.value
            host.host.directory.push(numberedPush(8), to: id)
            #expect(try await again.nextMessage().headers["n"] == "8")
            #expect(received.withLockedValue { $0.count } == 8, "nothing twice")
            await #expect(throws: (any Error).self, "refused while the socket is open") {
                try await host.ipc().events(for: "9") { _ in true }
            }
            try await again.close()
        }
    }

    @Test func pushesTheStreamHasNotWrittenGoToTheReconnectingSocket() async throws {
        try await TestHost.run(catalog: .ipcTests) { host in
            let id = ClientID("11")!
            let received = NIOLockedValueBox<[String]>([])
            // Reads two messages, then stops reading without closing: the rest stay buffered
            // or in flight; whatever the socket gets afterwards must be the rest, in order.
            let reader = Task {
                try await host.ipc().events(for: "11") { message in
                    received.withLockedValue { $0.append(message.headers["n"] ?? "") }
                    return received.withLockedValue { $0.count } < 2
                }
            }
            try await waitUntil { host.client("11")?.streaming == true }
            for n in 1...2 { host.host.directory.push(numberedPush(n), to: id) }
            try await reader.value
            for n in 3...50 { host.host.directory.push(numberedPush(n), to: id) }
            let socket = try await host.connect(client: "11")
            var fromSocket: [String] = []
            let buffered = try #require(host.client("11")).pushes - 2
            #expect(buffered == 48)
            // The stream may have written a prefix of 3...50 before the socket took over; the
            // socket receives exactly the remainder, in order.
            host.host.directory.push(numberedPush(51), to: id)
            while fromSocket.last != "51" {
                fromSocket.append(try await socket.nextMessage().headers["n"] ?? "")
            }
            let first = try #require(fromSocket.first.flatMap { Int($0) })
            #expect(first >= 3)
            #expect(fromSocket == (first...51).map { "\($0)" })
            try await socket.close()
        }
    }
}
