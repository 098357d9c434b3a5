extension ConduitError {
    /// A relay its recipient's host did not keep (`delivered` means kept, SPEC §3). One that
    /// breaks the framing's limits once `from` is in can never be kept: a `BadRequestError`, not
    /// an `UnavailableError` telling the sender to try again later. `cause`: the `DropCause`'s
    /// raw value (or a holder's answer, over NATS).
    public static func relayRefused(to target: ClientID, cause: String) -> ConduitError {
        guard cause != DropCause.unencodable.rawValue else {
            return .badRequest("the message can't be relayed to '\(target)': with 'from' added it breaks the framing's limits (docs/protocol.md)")
        }
        return .unavailable("client '\(target)' can't take the message now (\(cause))")
    }
}
