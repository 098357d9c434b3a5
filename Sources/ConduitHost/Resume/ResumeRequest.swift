import ConduitWire

/// What a client asks for on a resuming connect (SPEC §9): `resume=<N>` and `epoch=<E>` on the
/// WebSocket URL or on the events stream's.
struct ResumeRequest: Sendable, Equatable {
    /// The last host position the client holds (0 on a first connect).
    let received: UInt64
    /// The epoch the client knows; nil on a first connect.
    let epoch: String?

    /// nil when the query asks for no resume; an error text when it asks wrongly.
    static func parse(_ query: (String) -> String?) -> Result<ResumeRequest?, ResumeRequestError> {
        guard let stated = query("resume") else { return .success(nil) }
        guard let received = UInt64(decimalDigits: stated.utf8) else {
            return .failure(ResumeRequestError(message: "'resume' must be the last position received, a uint64 (0 on a first connect)"))
        }
        let epoch = query(ResumeHeader.epoch).flatMap { $0.isEmpty ? nil : $0 }
        if let epoch, epoch.utf8.count > 64 {
            return .failure(ResumeRequestError(message: "'epoch' is at most 64 bytes"))
        }
        return .success(ResumeRequest(received: received, epoch: epoch))
    }
}

struct ResumeRequestError: Error {
    let message: String
}
