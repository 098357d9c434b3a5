import Foundation

/// What every mode's report shares: one JSON line with sorted keys, and the verdict on which
/// side limited the run.
protocol ReportLine: Encodable {}

extension ReportLine {
    var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// "client" when the load tool used ≥ 90 % of its core (the server may be faster than
    /// measured), "server" when the server did, else `neither`.
    static func bottleneck(clientCores: Double, serverCores: Double?, neither: String) -> String {
        clientCores >= 0.9 ? "client" : (serverCores.map { $0 >= 0.9 ? "server" : neither } ?? "unknown")
    }
}
