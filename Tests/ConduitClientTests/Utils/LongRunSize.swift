import Foundation

/// A test's size from the environment (a long run's, docs/resume.md), else `default`. A value
/// that is not a whole number of at least 1 fails the test, naming the variable: read with
/// `Int(…) ?? default`, a typo ran the short test unnoticed, and 0 trapped on `1...0`.
func longRunSize(_ name: String, default value: Int) throws -> Int {
    guard let text = ProcessInfo.processInfo.environment[name] else { return value }
    guard let size = Int(text), size >= 1 else { throw LongRunSizeError(name: name, value: text) }
    return size
}

struct LongRunSizeError: Error, CustomStringConvertible {
    let name: String
    let value: String
    var description: String { "\(name)=\(value): a whole number of at least 1 is needed" }
}
