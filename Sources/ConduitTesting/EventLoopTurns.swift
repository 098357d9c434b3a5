import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix

/// The turns of an event loop, told by SwiftNIO's metrics delegate (give it to the group as it
/// is made): at the end of each turn, `progress` of the work being watched is read on the loop.
/// A loop polls its sockets once a turn, so work that moved `progress` from one value to another
/// in one turn kept every socket on the loop waiting that long. A task the work lets run tells
/// nothing of this (SwiftNIO runs tasks that tasks queue, and timers due, before it polls its
/// sockets again), and neither does a wait's length (a loaded machine stalls any thread).
public final class EventLoopTurns: NIOEventLoopMetricsDelegate, Sendable {
    private let state = NIOLockedValueBox(State())

    private struct State {
        var progress: (@Sendable () -> Int)?
        /// `progress` at the end of each turn, each value once.
        var values: [Int] = []
        var longestTurn = TimeAmount.zero
    }

    public init() {}

    /// Reads `progress` at the end of each turn from now on.
    public func watch(_ progress: @escaping @Sendable () -> Int) {
        state.withLockedValue { $0.progress = progress }
    }

    public func processedTick(info: NIOEventLoopTickInfo) {
        guard let progress = state.withLockedValue({ $0.progress }) else { return }
        let value = progress()
        state.withLockedValue { state in
            if state.values.last != value { state.values.append(value) }
            state.longestTurn = max(state.longestTurn, info.endTime - info.startTime)
        }
    }

    /// The most `progress` moved in one turn on its way from `start` to `end`: work done a part
    /// a turn moves it a part (now and then two, when the machine stalls the loop's thread
    /// between queuing the next part and looking at its timers), work done in one go all of it.
    public func longestStep(from start: Int, to end: Int) -> Int {
        state.withLockedValue { state in
            let points = [start] + state.values.filter { start < $0 && $0 <= end }
            return zip(points, points.dropFirst()).map { $1 - $0 }.max() ?? 0
        }
    }

    /// The longest turn's tasks since `watch`.
    public var longestTurn: TimeAmount {
        state.withLockedValue { $0.longestTurn }
    }
}
