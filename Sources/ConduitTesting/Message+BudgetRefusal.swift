public import ConduitWire
import NIOCore

extension Message {
    /// Whether this is the answer to a request the host's buffer budget could not take.
    public var isBudgetRefusal: Bool {
        headers["error"] == "UnavailableError" && String(buffer: payload).contains("budget")
    }
}
