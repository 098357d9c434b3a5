import ConduitKit
import ConduitWire
import NIOCore

/// A FIFO of whole messages bounded in bytes and in count (SPEC §3), drawing on the host-wide
/// budget. Used for a socket's outbound queue and an absent id's push buffer, so both follow
/// one rule: a message is kept or dropped whole; drop-oldest drops only `.droppable` messages;
/// an empty queue always takes one message (a single message larger than the bound can still
/// be delivered to a reader that keeps up). What it keeps pins no storage beyond its bytes
/// (`Entry.compacted`), so the bytes it counts are what it holds.
struct MessageQueue {
    struct Entry {
        let message: Message
        /// What the message holds in memory: its encoded size, headers included.
        let bytes: Int
        let delivery: PushDelivery

        init(_ message: Message, delivery: PushDelivery) {
            self.message = message
            self.bytes = message.encodedSize
            self.delivery = delivery
        }

        private init(_ message: Message, bytes: Int, delivery: PushDelivery) {
            self.message = message
            self.bytes = bytes
            self.delivery = delivery
        }

        /// As kept in a queue: its payload pins no more storage than its own (`Message.compacted`).
        var compacted: Entry { Entry(message.compacted(), bytes: bytes, delivery: delivery) }
    }

    enum Admission: Equatable {
        /// Kept; `evicted` older droppable messages were dropped to make room.
        case accepted(evicted: Int)
        case refused(DropCause)
    }

    /// Starts small and grows on demand: most connections never queue, and NIO's default
    /// capacity (16 entries) would cost each one about a KiB.
    private(set) var entries = CircularBuffer<Entry>(initialCapacity: 2)
    private(set) var bytes = 0
    var byteLimit: Int
    var countLimit: Int
    let budget: BufferBudget

    init(byteLimit: Int, countLimit: Int, budget: BufferBudget) {
        self.byteLimit = byteLimit
        self.countLimit = countLimit
        self.budget = budget
    }

    var isEmpty: Bool { entries.isEmpty }
    var first: Entry? { entries.first }
    var count: Int { entries.count }

    /// Appends `entry`, first dropping the oldest droppable messages when `evictOldest` and the
    /// bound is reached. `reserved`: the entry's bytes are already taken from the budget (it
    /// moves from another queue) and stay taken.
    /// `overflow` is offered the oldest messages first, while droppable, to keep elsewhere (a
    /// resuming id's window): each it takes leaves the queue, not dropped.
    mutating func append(_ entry: Entry, evictOldest: Bool, reserved: Bool = false, overflow: (Message) -> Bool = { _ in false }) -> Admission {
        var evicted = 0
        if !fits(entry) {
            while !fits(entry), let oldest = entries.first, oldest.delivery.isDroppable, overflow(oldest.message) {
                release(entries.removeFirst())
            }
            while evictOldest, !fits(entry), let index = entries.firstIndex(where: { $0.delivery.isDroppable }) {
                drop(entries.remove(at: index))
                evicted += 1
            }
        }
        if evicted > 0 { budget.dropped(.queueFull, count: evicted) }
        guard fits(entry) else {
            // Reserved, it was accepted already (its source was told so).
            if reserved {
                budget.release(entry.bytes)
                entry.delivery.countDropped()
            }
            budget.dropped(.queueFull)
            return .refused(.queueFull)
        }
        guard reserved || budget.reserve(entry.bytes) else {
            budget.dropped(.hostBudget)
            return .refused(.hostBudget)
        }
        entries.append(entry.compacted)
        bytes += entry.bytes
        return .accepted(evicted: evicted)
    }

    /// Appends a message another queue had accepted, with its reservation, whatever this
    /// queue's bounds: what was accepted is not dropped for being handed on.
    mutating func takeOver(_ entry: Entry) {
        entries.append(entry.compacted)
        bytes += entry.bytes
    }

    /// Puts older messages (a closed socket's unsent ones, already reserved) before what the
    /// queue holds; past the bound the newest droppable ones go. Reliable ones stay, over the
    /// bound (by no more than the queue they come from held, all of it charged to the budget):
    /// their handler was told they were accepted, and dropping one left a hole in its stream.
    /// `overflow` as for `append`, before anything is dropped.
    mutating func prepend(_ older: some BidirectionalCollection<Entry>, overflow: (Message) -> Bool = { _ in false }) -> Int {
        for entry in older.reversed() {
            entries.prepend(entry.compacted)
            bytes += entry.bytes
        }
        while isOverBound, let oldest = entries.first, oldest.delivery.isDroppable, overflow(oldest.message) {
            release(entries.removeFirst())
        }
        var dropped = 0
        while isOverBound, let index = entries.lastIndex(where: { $0.delivery.isDroppable }) {
            drop(entries.remove(at: index))
            dropped += 1
        }
        budget.dropped(.queueFull, count: dropped)
        return dropped
    }

    /// The oldest message, removed. `keepReservation`: its bytes stay taken from the budget
    /// (it moves to another queue); otherwise they are released.
    mutating func popFirst(keepReservation: Bool = false) -> Entry? {
        guard let entry = entries.popFirst() else { return nil }
        bytes -= entry.bytes
        if !keepReservation { budget.release(entry.bytes) }
        return entry
    }

    /// Everything, removed, with the reservations kept (to move to another queue).
    mutating func takeAll() -> CircularBuffer<Entry> {
        defer {
            entries = CircularBuffer(initialCapacity: 2)
            bytes = 0
        }
        return entries
    }

    /// Drops everything (counted under `cause`) and releases its bytes.
    mutating func discardAll(_ cause: DropCause) {
        for entry in entries { entry.delivery.countDropped() }
        budget.dropped(cause, count: entries.count)
        budget.release(bytes)
        entries = CircularBuffer(initialCapacity: 2)
        bytes = 0
    }

    private var isOverBound: Bool {
        entries.count > countLimit || (bytes > byteLimit && entries.count > 1)
    }

    /// Whether `entry` can be appended without dropping anything.
    func fits(_ entry: Entry) -> Bool {
        guard countLimit > 0, byteLimit > 0 else { return false }
        return entries.isEmpty || (entries.count < countLimit && bytes + entry.bytes <= byteLimit)
    }

    private mutating func release(_ entry: Entry) {
        bytes -= entry.bytes
        budget.release(entry.bytes)
    }

    /// Releases a message dropped after it was accepted, which its source may count.
    private mutating func drop(_ entry: Entry) {
        release(entry)
        entry.delivery.countDropped()
    }
}
