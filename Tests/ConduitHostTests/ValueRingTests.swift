@testable import ConduitHost
import Testing

/// The ring that holds a resume window's entries: first in, first out across its wrap-around,
/// growth (doubling, order kept) and resizing.
@Suite("Value ring")
struct ValueRingTests {
    @Test("elements come out in the order they went in, across wrap-around and growth")
    func firstInFirstOut() {
        var ring = ValueRing<Int>(minimumCapacity: 3)
        #expect(ring.capacity == 4 && ring.isEmpty)
        var expected: [Int] = []
        var next = 0
        // Appends and removals of uneven counts move the head around the storage many times,
        // and the ring grows while its elements wrap.
        for round in 0..<200 {
            for _ in 0..<(round % 7 + 1) {
                ring.append(next)
                expected.append(next)
                next += 1
            }
            let removed = min(expected.count, round % 5 + 1)
            ring.removeFirst(removed)
            expected.removeFirst(removed)
            #expect(ring.count == expected.count)
            #expect((0..<ring.count).map { ring[$0] } == expected)
            #expect(ring.capacity >= ring.count && ring.capacity.nonzeroBitCount == 1)
        }
    }

    @Test("it doubles only when full, and a resized ring keeps its elements in storage of their count")
    func growthAndResizing() {
        var ring = ValueRing<UInt64>(minimumCapacity: 4)
        ring.append(1)
        ring.append(2)
        ring.removeFirst(2)
        for value in 3...6 as ClosedRange<UInt64> { ring.append(value) }
        #expect(ring.isFull && ring.capacity == 4)
        ring.append(7)
        #expect(!ring.isFull && ring.capacity == 8)
        #expect((0..<ring.count).map { ring[$0] } == [3, 4, 5, 6, 7])
        let resized = ring.resized(minimumCapacity: ring.count)
        #expect(resized.capacity == 8 && (0..<resized.count).map { resized[$0] } == [3, 4, 5, 6, 7])
        ring.removeFirst(2)
        let smaller = ring.resized(minimumCapacity: ring.count)
        #expect(smaller.capacity == 4 && !smaller.isFull && (0..<smaller.count).map { smaller[$0] } == [5, 6, 7])
        #expect(ValueRing<UInt64>(minimumCapacity: 0).capacity == 1)
    }
}
