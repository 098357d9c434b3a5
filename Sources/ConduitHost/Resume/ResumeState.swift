import ConduitKit
import ConduitWire
import Synchronization
import NIOCore

/// One resuming id's positions in both directions (SPEC §9), shared by its sockets and its
/// fallback stream one after another.
///
/// Host → client: every message gets the next position as it is written, and stays in the
/// window until the client acknowledges it; the window is bounded in encoded bytes (the newest
/// is always kept), and the memory it takes comes from the host-wide budget (`memory(of:)`:
/// charged by encoded bytes alone, a window of tiny messages took six times its charge).
/// A message of one frame is kept as the bytes its writer encoded, appended to one buffer
/// (`log`): keeping each as a `Message` cost a copy of its payload (a slice of the socket's
/// read buffer) and of its header list per message, and their release on every
/// acknowledgement, half the routed echo's cost of resume.
/// Only the current writer (the id's socket or stream) may stamp: a socket that was replaced
/// and still writes is told so, and hands its messages to the new one instead.
///
/// Client → host: positions already processed are duplicates. A chunk's position counts as
/// processed only once its whole request is, so the acknowledgement stops below an open
/// chunked request and the client sends its chunks again after a reconnect.
///
/// Here: the state and the id's ending. Its concerns are `ResumeState+Replay` (a resuming
/// connect), `+Window` (host positions), `+Memory` (the window's charge on the budget) and
/// `+ClientPositions`.
final class ResumeState: Sendable {
    /// A window entry: plain values, so keeping and releasing one costs no reference counting.
    /// Sizes are 32-bit (no message reaches 4 GiB): every message in the window takes an
    /// entry, and the budget is charged for it. Its position is the window's count from the
    /// next one (the window holds consecutive positions).
    struct Sent {
        /// The encoded message's size, which the window counts.
        let bytes: UInt32
        /// Where its bytes in the log end, counted from the epoch's start (its part of the log
        /// follows the previous entry's end): acknowledged entries leave the log up to the last
        /// one's end without a sum over them.
        let loggedEnd: Int
        /// The memory it holds outside the log (`held`).
        let heldBytes: UInt32
        let held: Held
        /// A whole message, or the last part of one: evictions end here.
        let endsMessage: Bool
    }

    /// What of a window entry is kept apart from the log.
    enum Held {
        case nothing
        /// The message, whole, next in `held` (a part of a split message).
        case message
        /// Its payload, next in `heldPayloads`: the log has the rest (a payload written apart
        /// from its frame, alone in its buffer, is kept without a copy).
        case payload
    }

    struct State {
        var epoch = ResumeState.newEpoch()
        /// `pos` as the next message gets it: counted up as messages are kept (`increment`).
        var nextField = ResumeState.position(1)
        var nextPosition: UInt64 { nextField.number }
        var window = ValueRing<Sent>(minimumCapacity: 4)
        /// The position of the window's oldest message (the next position when it is empty).
        var firstPosition: UInt64 { nextPosition - UInt64(window.count) }
        /// Where the next message's bytes in the log start, counted from the epoch's start.
        var loggedEnd: Int { released.logged + log.readableBytes }
        /// The encoded messages of the window that are not held, oldest first.
        var log = ResumeLog()
        /// The messages of the window kept whole, oldest first.
        var held = CircularBuffer<Message>(initialCapacity: 1)
        /// The payloads of the window kept apart from the log, oldest first.
        var heldPayloads = CircularBuffer<ByteBuffer>(initialCapacity: 1)
        var windowBytes = 0
        /// Memory of the window's messages outside the log.
        var heldBytes = 0
        /// Taken from the host's budget: the window's memory (`memory(of:)`), and up to two
        /// steps ahead of it while the window holds messages.
        var charged = 0
        /// The charge covers the window's memory (it does not when the newest message was kept
        /// over the bound): a message that grows no storage then needs no charging.
        var memoryIsCharged = false
        var acknowledged: UInt64 = 0
        var writer: ObjectIdentifier?
        /// Every client position up to this one is processed.
        var clientAck: UInt64 = 0
        /// Processed client positions above `clientAck` (only while a chunked request is open),
        /// and the memory their set takes, which the window's charge covers: it outlives the
        /// connection (a resume drops the positions sent again), and uncharged, 4,096 of them an
        /// id held 64 KiB each outside the budget.
        var processedAbove = Set<UInt64>()
        var processedAboveMemory = 0
        /// `end()` released it: nothing is recorded or charged any more (a socket on another
        /// event loop finishes the read it is in on it, and what it charged was never given back).
        var ended = false
        var counters = ResumeCounters()
        /// What left the window since the epoch began: where its oldest message is, counted
        /// from the epoch's start (a replay's place stays valid while acknowledgements release).
        var released = WindowPlace()
        /// The last message to leave the window left only in part (the client acknowledged
        /// the first parts of one): the window begins inside it.
        var releasedInsideAMessage = false
    }

    /// A place in the window's storage, counted from the epoch's start: bytes of the log, and
    /// entries of the lists of held messages and held payloads.
    struct WindowPlace {
        var logged = 0
        var held = 0
        var heldPayloads = 0
    }

    /// Bound on the positions remembered above the acknowledgement while a chunked request is
    /// open: past it the connection is closed, not the memory grown.
    static let maxProcessedAbove = 4096

    let windowLimit: Int
    let budget: BufferBudget
    /// Taken twice per resumed message. The standard library's `Mutex` (Swift 6.3: the thread's
    /// id cached, one atomic exchange each way, inlined) costs 5.8 ns to lock and unlock on this
    /// machine against 7.2-9.2 ns for a pthread mutex (`NIOLockedValueBox`), and 94 fewer
    /// instructions a message of the resuming routed echo.
    let state = Mutex(State())

    init(windowLimit: Int, budget: BufferBudget) {
        self.windowLimit = windowLimit
        self.budget = budget
    }

    // MARK: Ending

    /// The id's state ends (a plain connection, or the id expired): the window is released.
    /// `dropped`: its messages are counted as dropped for that cause (SPEC §3: an id's buffers
    /// released at expiry are counted; a window's messages not yet acknowledged went unsaid).
    func end(counting dropped: DropCause? = nil) {
        state.withLock { state in
            state.writer = nil
            state.ended = true
            if let dropped {
                let messages = (0..<state.window.count).count { state.window[$0].endsMessage }
                budget.dropped(dropped, count: messages)
            }
            releaseWindow(&state)
        }
    }

    /// The id has no socket or stream for now: the window keeps its messages in storage of
    /// their size, and none once empty (an id that waits out its grace period otherwise held
    /// up to 64 KiB of log, and its lists as long as they ever were).
    func idle() {
        state.withLock { state in
            if state.window.isEmpty {
                state.log = ResumeLog()
                Self.emptyLists(&state)
            } else {
                state.log = state.log.compacted()
                state.window = state.window.resized(minimumCapacity: state.window.count)
            }
            settle(&state)
        }
    }

    // MARK: Diagnostics

    var snapshot: ResumeSnapshot {
        state.withLock { state in
            ResumeSnapshot(
                epoch: state.epoch, sent: state.nextPosition - 1, acknowledged: state.acknowledged,
                windowMessages: state.window.count, windowBytes: state.windowBytes, windowMemoryBytes: Self.memory(of: state),
                clientAcknowledged: state.clientAck,
                replayed: state.counters[.replayed], duplicates: state.counters[.duplicate], lost: state.counters[.lost],
                evicted: state.counters[.evicted], resets: state.counters[.reset], carried: state.counters[.carried])
        }
    }

    private static func newEpoch() -> String {
        String(UInt64.random(in: 1...UInt64.max), radix: 36)
    }
}
