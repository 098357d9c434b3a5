/// Messages and bytes one connection moved since it last reported them to `HostMetrics`.
struct TrafficTally {
    private(set) var messagesIn = 0
    private(set) var bytesIn = 0
    private(set) var messagesOut = 0
    private(set) var bytesOut = 0

    mutating func received(bytes: Int) {
        messagesIn += 1
        bytesIn += bytes
    }

    mutating func sent(bytes: Int) {
        messagesOut += 1
        bytesOut += bytes
    }
}
