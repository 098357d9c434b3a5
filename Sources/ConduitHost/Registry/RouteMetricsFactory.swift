import CoreMetrics
import Synchronization

/// The metrics factory a route's handlers get: the host's, remembering the series they make,
/// so that those leave `/metrics` with the route, as the route's own counters do (a NATS route
/// a reload removed kept `conduit_nats_connected 0` and its counters for good). Kept with the
/// route's name across reloads: a handler made again for changed options makes the same series,
/// and the old one's stop must not take them away.
final class RouteMetricsFactory: MetricsFactory {
    private let base: any MetricsFactory
    /// How to destroy each series made, by kind, label and dimensions.
    private let destroyers = Mutex<[String: @Sendable () -> Void]>([:])

    init(base: any MetricsFactory) {
        self.base = base
    }

    /// The route left the table: every series its handlers made goes.
    func destroyAll() {
        let all = destroyers.withLock { destroyers in
            defer { destroyers = [:] }
            return Array(destroyers.values)
        }
        for destroy in all { destroy() }
    }

    /// Makes a series with `make`, remembered (by kind, label and dimensions) for `destroyAll`.
    private func made<Handler: Sendable>(
        _ kind: String, _ label: String, _ dimensions: [(String, String)], _ make: () -> Handler,
        destroyedBy destroy: @escaping @Sendable (any MetricsFactory, Handler) -> Void
    ) -> Handler {
        let handler = make()
        let key = "\(kind) \(label) " + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        destroyers.withLock { $0[key] = { [base] in destroy(base, handler) } }
        return handler
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        made("counter", label, dimensions, { base.makeCounter(label: label, dimensions: dimensions) }) { $0.destroyCounter($1) }
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        made("floating-point counter", label, dimensions, { base.makeFloatingPointCounter(label: label, dimensions: dimensions) }) {
            $0.destroyFloatingPointCounter($1)
        }
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        made("meter", label, dimensions, { base.makeMeter(label: label, dimensions: dimensions) }) { $0.destroyMeter($1) }
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        made("recorder", label, dimensions, { base.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate) }) {
            $0.destroyRecorder($1)
        }
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        made("timer", label, dimensions, { base.makeTimer(label: label, dimensions: dimensions) }) { $0.destroyTimer($1) }
    }

    func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
    func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}
