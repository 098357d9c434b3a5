/// A first-in, first-out list of plain values in a ring of storage whose capacity is a power of
/// two (`ResumeState`'s window entries, one per message kept).
///
/// Storage of its own rather than a `CircularBuffer`: that keeps optional elements and checks
/// its indices on every access, and appending an entry cost 48 instructions a message of the
/// resuming routed echo; here an append is a store, a mask and two additions. Never copied: a copy
/// would share its storage, and write over it.
struct ValueRing<Element: BitwiseCopyable>: Sendable {
    /// Unchecked: its elements are written only by the ring that holds it, under its owner's lock.
    /// Plain values need no deinitializing.
    private final class Storage: @unchecked Sendable {
        let elements: UnsafeMutablePointer<Element>
        let capacity: Int

        init(capacity: Int) {
            elements = .allocate(capacity: capacity)
            self.capacity = capacity
        }

        deinit { elements.deallocate() }
    }

    private var storage: Storage
    /// Where the first element is.
    private var head = 0
    private(set) var count = 0

    /// Room for at least `minimumCapacity` elements (rounded up to a power of two).
    init(minimumCapacity: Int) {
        storage = Storage(capacity: Self.capacity(holding: minimumCapacity))
    }

    var capacity: Int { storage.capacity }
    var isEmpty: Bool { count == 0 }
    /// Whether the next `append` doubles the storage.
    var isFull: Bool { count == storage.capacity }

    /// The element `offset` places after the first (0 ..< count).
    subscript(offset: Int) -> Element {
        precondition(offset >= 0 && offset < count, "element \(offset) of a ring of \(count)")
        return storage.elements[(head &+ offset) & (storage.capacity &- 1)]
    }

    @inline(__always)
    mutating func append(_ element: Element) {
        if isFull { grow() }
        storage.elements[(head &+ count) & (storage.capacity &- 1)] = element
        count &+= 1
    }

    /// The first `removed` elements go.
    mutating func removeFirst(_ removed: Int) {
        precondition(removed >= 0 && removed <= count, "removed \(removed) elements of a ring of \(count)")
        head = (head &+ removed) & (storage.capacity &- 1)
        count -= removed
    }

    /// The same elements in new storage of the capacity `minimumCapacity` rounds up to (at
    /// least the count).
    func resized(minimumCapacity: Int) -> ValueRing {
        var copy = ValueRing(minimumCapacity: max(minimumCapacity, count))
        for offset in 0..<count { copy.append(self[offset]) }
        return copy
    }

    private mutating func grow() {
        self = resized(minimumCapacity: 2 * storage.capacity)
    }

    private static func capacity(holding count: Int) -> Int {
        count <= 1 ? 1 : 1 << (Int.bitWidth - (count - 1).leadingZeroBitCount)
    }
}
