import Histogram
import NIOCore

/// Counts and round-trip times of every connection. All connections run on the load tool's
/// single event loop, so this is touched from that thread only (reads go through `eventLoop.submit`).
final class Recorder: @unchecked Sendable {
    let eventLoop: any EventLoop
    private(set) var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    private(set) var completed = 0
    private(set) var errors: [String] = []
    var measuring = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func replyArrived(sentAt: NIODeadline, now: NIODeadline) {
        guard measuring else { return }
        completed += 1
        _ = histogram.record(UInt64(max(0, (now - sentAt).nanoseconds)))
    }

    func failed(_ message: String) {
        errors.append(message)
    }

    func startMeasuring() {
        histogram.reset()
        completed = 0
        measuring = true
    }
}
