import ConduitKit
import NIOCore
import Testing

@testable import ConduitHost

/// The order in which ids away give their places (`limits.maxClients`, docs/memory.md).
@Suite("Ids away, oldest first")
struct AwayOrderTests {
    @Test func theIdAwayTheLongestComesFirstAndOneThatCameBackNotAtAll() {
        var order = AwayOrder()
        for name in ["a", "b", "c"] { order.wentAway(ClientID(name)!, expiresAt: nil) }
        order.left(ClientID("b")!)
        order.wentAway(ClientID("a")!, expiresAt: nil)
        #expect(order.removeOldest() == ClientID("c")!)
        #expect(order.removeOldest() == ClientID("a")!)
        #expect(order.removeOldest() == nil)
        #expect(!order.holds(ClientID("a")!))
    }

    /// An id that comes and goes leaves a stale entry each time: they are swept, so the order
    /// stays within about twice the ids away however often ids come back.
    @Test func staleEntriesAreSweptAsIdsComeAndGo() {
        var order = AwayOrder()
        order.wentAway(ClientID("steady")!, expiresAt: nil)
        let flapping = ClientID("flapping")!
        for _ in 0..<100_000 {
            order.wentAway(flapping, expiresAt: nil)
            order.left(flapping)
        }
        #expect(order.storedEntries <= 2 * 1 + 1024 + 1)
        #expect(order.removeOldest() == ClientID("steady")!)
        #expect(order.removeOldest() == nil)
    }

    /// Ids expire in the order they went away: those whose grace period ended, the oldest
    /// first, skipping ids that came back or went away again since.
    @Test func expiredIdsComeOutOldestFirstAndOnlyOnce() {
        var order = AwayOrder()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        for (index, name) in ["a", "b", "c", "d"].enumerated() {
            order.wentAway(ClientID(name)!, expiresAt: start + .seconds(Int64(index)))
        }
        order.left(ClientID("b")!)
        order.wentAway(ClientID("c")!, expiresAt: start + .seconds(10))
        #expect(order.removeExpired(asOf: start - .seconds(1)).isEmpty)
        #expect(order.nextExpiry() == start)
        #expect(order.removeExpired(asOf: start + .seconds(3)) == [ClientID("a")!, ClientID("d")!])
        #expect(order.nextExpiry() == start + .seconds(10))
        #expect(order.removeExpired(asOf: start + .seconds(10)) == [ClientID("c")!])
        #expect(order.nextExpiry() == nil && !order.holds(ClientID("c")!))
    }
}
