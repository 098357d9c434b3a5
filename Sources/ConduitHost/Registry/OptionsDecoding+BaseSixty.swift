import ConduitKit
import Foundation
import Yams

extension OptionsDecoder {
    /// Refuses a scalar of `node` that Yams would read as a base-60 number too large for 64
    /// bits. YAML 1.1 reads digits joined by ':' (`1:30`) as base 60, and Yams multiplies them
    /// with arithmetic that traps on overflow: `1:0:0:0:0:0:0:0:0:0:0` as a whole-number option
    /// took the host down at start-up or on reload. Such a value is refused wherever it is (the
    /// options of a handler that is not `HandlerOptions` have no types to look at), which costs
    /// nothing real: no string option needs a number of eleven base-60 places.
    static func refuseOverflowingBaseSixty(in node: Node, entry: RouteEntry) throws(ConfigurationError) {
        switch node {
        case .scalar(let scalar):
            guard scalar.string.contains(":"), Self.baseSixtyOverflows(scalar.string) else { return }
            throw ConfigurationError(
                SourceLocation(file: entry.location.file, mark: scalar.mark),
                "option value '\(scalar.string)' of route '\(entry.route)' is out of range: YAML reads digits joined by ':' as a base-60 number, and this one does not fit in 64 bits (quoting does not change that for a number option)")
        case .mapping(let mapping):
            for (key, value) in mapping {
                try refuseOverflowingBaseSixty(in: key, entry: entry)
                try refuseOverflowingBaseSixty(in: value, entry: entry)
            }
        case .sequence(let sequence):
            for item in sequence { try refuseOverflowingBaseSixty(in: item, entry: entry) }
        case .alias:
            return
        }
    }

    /// Whether Yams' base-60 reading of `text` (underscores dropped, a sign, then parts that
    /// are each a decimal Int, a sign of their own allowed) overflows, the sign's product last
    /// included (`--1:-9223372036854775748` is `Int.min` until negated, and trapped there);
    /// false for text that is not such a number.
    static func baseSixtyOverflows(_ text: String) -> Bool {
        var digits = Substring(text.replacingOccurrences(of: "_", with: ""))
        let negative = digits.first == "-"
        if negative || digits.first == "+" { digits = digits.dropFirst() }
        let parts = digits.split(separator: ":", omittingEmptySubsequences: false).map { Int($0, radix: 10) }
        guard parts.allSatisfy({ $0 != nil }) else { return false }
        var base = 1
        var value = 0
        for part in parts.reversed() {
            let (placed, placeOverflow) = part!.multipliedReportingOverflow(by: base)
            let (sum, sumOverflow) = value.addingReportingOverflow(placed)
            let (nextBase, baseOverflow) = base.multipliedReportingOverflow(by: 60)
            guard !placeOverflow, !sumOverflow, !baseOverflow else { return true }
            (value, base) = (sum, nextBase)
        }
        return negative && value.multipliedReportingOverflow(by: -1).overflow
    }
}
