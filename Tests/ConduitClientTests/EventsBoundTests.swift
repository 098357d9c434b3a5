import ConduitClient
import ConduitHost
import ConduitKit
import ConduitTesting
import ConduitWire
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import Testing

// 12 MiB pushed one message at a time: 46 s and past 60 s in loaded full runs, 3 s alone.
@Suite("Client: an events stream nobody reads", .timeLimit(.minutes(3)))
struct EventsBoundTests {
    /// An events stream held every event until it was read: one that nobody read held every
    /// message the host sent, for as long as the client ran (here 12 MiB). Past its bound
    /// (8 MiB by default) events are left out and counted; `receive` still gets every message.
    @Test func anUnreadStreamHoldsNoMoreThanItsBoundAndCountsWhatItLeftOut() async throws {
        try await TestHost.run(catalog: .clientTests) { host in
            let id = ClientID("unread-events")!
            let conduit = host.client(id: id.rawValue)
            let received = Atomic<Int>(0)
            conduit.receive { _ in received.add(1, ordering: .relaxed) }
            let events = conduit.events()
            try await conduit.connect()
            let pushes = 48
            for n in 1...pushes {
                #expect(host.host.directory.push(numberedPush(n, payload: patternedBytes(n, count: 256 << 10)), to: id).isAccepted)
                try await waitUntil { received.load(ordering: .relaxed) == n }
            }
            let read = NIOLockedValueBox<[ConduitEvent]>([])
            let reader = Task { for await event in events { read.withLockedValue { $0.append(event) } } }
            defer { reader.cancel() }
            try await waitUntil { read.withLockedValue { $0.count } > 1 }
            // Once the stream is read, the next message comes, after the count of those left out.
            host.host.directory.push(numberedPush(pushes + 1), to: id)
            try await waitUntil { read.withLockedValue { $0.last?.pushNumber } == pushes + 1 }
            let all = read.withLockedValue { $0 }
            let held = all.compactMap(\.pushNumber).dropLast()
            #expect(held.count * (256 << 10) <= 8 << 20, "\(held.count) messages of 256 KiB held")
            #expect(Array(held) == Array(1...held.count), "the first ones are held, in order")
            guard case .eventsLeftOut(let leftOut) = all[all.count - 2] else {
                Issue.record("no count of what was left out before the next message: \(all.suffix(2))")
                return
            }
            #expect(held.count + leftOut == pushes)
            conduit.close()
        }
    }
}

extension ConduitEvent {
    /// The `n` of a numbered push this event carries.
    fileprivate var pushNumber: Int? {
        guard case .message(let message) = self else { return nil }
        return message.headers["n"].flatMap { Int($0) }
    }
}
