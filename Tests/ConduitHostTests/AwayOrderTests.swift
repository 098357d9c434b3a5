import ConduitKit
import Testing

@testable import ConduitHost

/// The order in which ids away give their places (`limits.maxClients`, docs/memory.md).
@Suite("Ids away, oldest first")
struct AwayOrderTests {
    @Test func theIdAwayTheLongestComesFirstAndOneThatCameBackNotAtAll() {
        var order = AwayOrder()
        for name in ["a", "b", "c"] { order.wentAway(ClientID(name)!) }
        order.left(ClientID("b")!)
        order.wentAway(ClientID("a")!)
        #expect(order.removeOldest() == ClientID("c")!)
        #expect(order.removeOldest() == ClientID("a")!)
        #expect(order.removeOldest() == nil)
        #expect(!order.holds(ClientID("a")!))
    }

    /// An id that comes and goes leaves a stale entry each time: they are swept, so the order
    /// stays within about twice the ids away however often ids come back.
    @Test func staleEntriesAreSweptAsIdsComeAndGo() {
        var order = AwayOrder()
        order.wentAway(ClientID("steady")!)
        let flapping = ClientID("flapping")!
        for _ in 0..<100_000 {
            order.wentAway(flapping)
            order.left(flapping)
        }
        #expect(order.storedEntries <= 2 * 1 + 1024 + 1)
        #expect(order.removeOldest() == ClientID("steady")!)
        #expect(order.removeOldest() == nil)
    }
}
