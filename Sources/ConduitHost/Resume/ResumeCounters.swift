struct ResumeCounters: Sendable {
    private var counts: [ResumeEvent: Int] = [:]

    subscript(event: ResumeEvent) -> Int { counts[event, default: 0] }

    mutating func add(_ event: ResumeEvent, _ count: Int, metrics: HostMetrics) {
        guard count > 0 else { return }
        counts[event, default: 0] += count
        metrics.resume(event, count: count)
    }
}
